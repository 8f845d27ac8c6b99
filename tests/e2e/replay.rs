//! `writ replay`: a replay of the log equals the live read model after a
//! mixed workload and names a row altered behind Writ's back; snapshots at
//! a cursor and at a time hold exactly the state of that moment.

use writ_store::statement::Statement;
use writ_store::RowExt;

use crate::browser::{self, Browser, REDIRECT_URI};
use crate::harness::{eventually, rounds, Backend, Deployment};
use crate::oauth::{self, Api, Creds};
use crate::refresh::{password_app, user, PASSWORD};

/// The events of one lane: client-credentials tokens, a third of them
/// revoked, and one person's refresh family rotated, reused now and then
/// (which revokes the family) and signed in again.
async fn lane(api: &Api, service: &Creds, app: &Creds, username: &str, steps: usize) {
    let sign_in = || async {
        let login = api.password(app, username, PASSWORD).await;
        assert_eq!(login.status, 200, "{}", login.body);
        login.field("refresh_token")
    };
    let mut refresh = sign_in().await;
    for step in 0..steps {
        let token = api.client_credentials(service).await;
        if step % 3 == 0 {
            assert_eq!(api.revoke(service, &token).await.status, 200);
        }
        let rotated = api.refresh(app, &refresh).await;
        assert_eq!(rotated.status, 200, "{}", rotated.body);
        let previous = std::mem::replace(&mut refresh, rotated.field("refresh_token"));
        if step % 40 == 39 {
            assert_eq!(api.refresh(app, &previous).await.error(), "invalid_grant");
            refresh = sign_in().await;
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn a_replay_equals_the_live_read_model_and_names_an_altered_row() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let service = oauth::client(&deployment, &[]);
    let app = password_app(&deployment, &[]);
    let doomed = oauth::client(&deployment, &[]);
    for lane in 0..16 {
        user(&deployment, &format!("user{lane}"));
    }
    let writ = deployment.serve();
    let api = Api::new(&writ);
    rounds(16, 16, |index| {
        let (api, service, app) = (&api, &service, &app);
        async move { lane(api, service, app, &format!("user{index}"), 1400).await }
    })
    .await;
    // The code flow too: consent, code, tokens; two consents withdrawn.
    let web = browser::web_client(&deployment, &[]);
    for n in 0..5 {
        let username = format!("coder{n}");
        browser::user(&deployment, &username);
        let person = Browser::new(&writ);
        let back = person
            .code_flow(&browser::oidc_params(&web.id, "s"), &username)
            .await;
        let code = back.redirect_query(REDIRECT_URI)["code"].clone();
        let tokens = browser::redeem(&api, &web, &code).await;
        assert_eq!(tokens.status, 200, "{}", tokens.body);
        if n < 2 {
            assert_eq!(person.withdraw_consent(&web.id).await.status, 303);
        }
    }
    api.client_credentials(&doomed).await;
    deployment
        .writ(&["client", "disable", &doomed.id])
        .success();
    deployment.writ(&["user", "disable", "user0"]).success();
    let events = deployment.event_count().await;
    assert!(events >= 100_000, "a mixed workload of {events} events");
    for kind in [
        "CodeRedeemed",
        "ConsentWithdrawn",
        "RefreshTokenReuseDetected",
        "ClientDisabled",
        "AccountDisabled",
    ] {
        let sql = format!("SELECT count(*) FROM events WHERE event_type = '{kind}'");
        assert!(deployment.count(&sql).await > 0, "the workload has {kind}");
    }

    let replay = deployment.writ(&["replay", "--verify"]);
    assert!(
        replay.0.status.success(),
        "{}{}",
        replay.stdout(),
        replay.stderr()
    );
    assert!(
        replay.stdout().contains("the read model equals a replay"),
        "{}",
        replay.stdout()
    );

    bulk_replay_equals_the_live_tables(&deployment).await;

    let store = deployment.store().await;
    let altered = store
        .db()
        .fetch_optional(&Statement::new(
            "UPDATE grants SET status = 'active' WHERE gid = (SELECT gid FROM grants WHERE status <> 'active' ORDER BY gid LIMIT 1) RETURNING gid",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .and_then(|row| row.text("gid"))
        .unwrap_or_else(|| panic!("no revoked grant to alter"));
    let replay = deployment.writ(&["replay", "--verify"]);
    assert!(!replay.0.status.success(), "an altered row must fail");
    let report = replay.stdout();
    assert!(
        report.contains("grants: 1 row(s) only in the live table, 1 only in the replay"),
        "{report}"
    );
    assert_eq!(
        report.matches(&altered).count(),
        2,
        "both versions of the row, by its gid: {report}"
    );
}

/// `writ replay --into` on PostgreSQL loads with COPY from tables folded in
/// memory; the committer and the projector wrote the live ones with SQL.
/// Once the projector has indexed every event, the two agree row for row.
async fn bulk_replay_equals_the_live_tables(deployment: &Deployment) {
    let events = deployment.event_count().await;
    eventually("the audit index to catch up", || async {
        (deployment.count("SELECT count(*) FROM audit_index").await == events).then_some(())
    })
    .await;
    let replay = deployment.writ(&["replay", "--into", "bulk"]);
    assert!(replay.0.status.success(), "{}", replay.stderr());
    for table in writ_store::schema::REBUILDABLE_TABLES {
        let differing = deployment
            .count(&format!(
                "SELECT count(*) FROM ((SELECT * FROM public.{table} EXCEPT ALL SELECT * FROM snapshot_bulk.{table})
                  UNION ALL (SELECT * FROM snapshot_bulk.{table} EXCEPT ALL SELECT * FROM public.{table})) AS d"
            ))
            .await;
        let rows = deployment
            .count(&format!("SELECT count(*) FROM snapshot_bulk.{table}"))
            .await;
        assert_eq!(differing, 0, "{table}: rows that differ ({rows} replayed)");
        assert!(rows > 0, "{table} is empty");
    }
    // The keys and indexes dropped for the load are back, as they were made.
    let indexes = |schema: &str| {
        format!("SELECT tablename, indexname, replace(indexdef, '{schema}.', '') AS def FROM pg_indexes WHERE schemaname = '{schema}'")
    };
    let missing = deployment
        .count(&format!(
            "SELECT count(*) FROM (({}) EXCEPT ({})) AS d",
            indexes("public").replace("WHERE", "WHERE tablename IN (SELECT tablename FROM pg_tables WHERE schemaname = 'snapshot_bulk') AND"),
            indexes("snapshot_bulk")
        ))
        .await;
    let rebuilt = deployment
        .count("SELECT count(*) FROM pg_indexes WHERE schemaname = 'snapshot_bulk'")
        .await;
    assert_eq!(
        missing, 0,
        "indexes of the live tables missing from the snapshot"
    );
    assert!(
        rebuilt >= 9,
        "{rebuilt} indexes: one key per table and more"
    );
}

/// Every column of a clients row, as JSON text on SQLite.
const SQLITE_CLIENT_ROW: &str = "json_object('client_id', client_id, 'name', name, 'settings', settings, 'secret_hash', secret_hash, 'status', status, 'registered_at', registered_at, 'updated_at', updated_at)";

/// The rows of a clients table, as sorted JSON text.
async fn rows(deployment: &Deployment, schema_table: &str) -> Vec<String> {
    let sql = match deployment.database_url {
        Some(_) => format!("SELECT to_jsonb(t)::text AS row FROM {schema_table} t ORDER BY 1"),
        None => format!("SELECT {SQLITE_CLIENT_ROW} AS row FROM {schema_table} ORDER BY 1"),
    };
    deployment
        .store()
        .await
        .db()
        .fetch_all(&Statement::new(sql))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .filter_map(|row| row.text("row"))
        .collect()
}

writ_testing::on_both_backends!(snapshots_hold_the_state_at_a_cursor_and_at_a_time);

async fn snapshots_hold_the_state_at_a_cursor_and_at_a_time(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let first = oauth::client(&deployment, &[]);
    oauth::client(&deployment, &[]);
    let store = deployment.store().await;
    let last = store
        .db()
        .fetch_optional(&Statement::new(format!(
            "SELECT {} FROM events ORDER BY {} DESC LIMIT 1",
            writ_store::event_columns(store.dialect()),
            writ_store::log_order(store.dialect()).replace(',', " DESC,")
        )))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|row| writ_store::StoredEvent::from_row(&row))
        .unwrap_or_else(|| panic!("no events"))
        .unwrap_or_else(|e| panic!("{e}"));
    let columns = |schema: &str| match deployment.database_url {
        Some(_) => format!("{schema}.clients"),
        None => "clients".to_owned(),
    };
    let before = rows(&deployment, &columns("public")).await;
    // Commit times are microseconds; the next event must be later.
    std::thread::sleep(std::time::Duration::from_millis(5));
    deployment.writ(&["client", "disable", &first.id]).success();
    oauth::client(&deployment, &[]);
    assert_ne!(rows(&deployment, &columns("public")).await, before);

    let cursor = last.cursor().to_string();
    deployment
        .writ(&["replay", "--position", &cursor, "--into", "at_cursor"])
        .success();
    deployment
        .writ(&["replay", "--as-of", &last.recorded_at, "--into", "at_time"])
        .success();
    for name in ["at_cursor", "at_time"] {
        let snapshot = match deployment.database_url {
            Some(_) => rows(&deployment, &format!("snapshot_{name}.clients")).await,
            None => {
                let path = deployment.data.path().join(format!("snapshot-{name}.db"));
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let found: Vec<String> = sqlx::query_scalar(&format!(
                    "SELECT {SQLITE_CLIENT_ROW} FROM clients ORDER BY 1"
                ))
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
                found
            }
        };
        assert_eq!(snapshot, before, "snapshot {name}");
    }
    let again = deployment.writ(&["replay", "--position", &cursor, "--into", "at_cursor"]);
    assert!(!again.0.status.success(), "an existing snapshot is kept");
    assert!(again.stderr().contains("exists"), "{}", again.stderr());
}
