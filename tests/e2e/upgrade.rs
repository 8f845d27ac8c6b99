//! A database written by Writ before versioned migrations (main at
//! 3b5fd0e) through real traffic upgrades in place on both backends: `writ
//! migrate` adopts its migrations without running any, `writ replay
//! --verify` and `writ audit verify` pass across the versions, and its
//! clients, secrets and users still complete the code flow and client
//! credentials.
//!
//! The fixture under `tests/fixtures/3b5fd0e/` was written by
//! [`write_the_fixture`], run once by hand against a `writ` built at
//! 3b5fd0e:
//!
//! ```text
//! git worktree add /tmp/writ-3b5fd0e 3b5fd0e
//! (cd /tmp/writ-3b5fd0e && cargo build --release -p writ-cli)
//! WRIT_TEST_BINARY=/tmp/writ-3b5fd0e/target/release/writ \
//!   cargo nextest run -p writ-tests --run-ignored only write_the_fixture
//! ```
//!
//! Its key files encrypt nothing but this fixture's test data.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::browser::{self, Browser, REDIRECT_URI};
use crate::harness::{writ_binary, Backend, Deployment};
use crate::oauth::{Api, Creds};
use writ_testing::PrivateCluster;

writ_testing::on_both_backends!(a_database_written_before_versioned_migrations_upgrades_in_place);

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/3b5fd0e")
}

fn creds(fixture: &Value, name: &str) -> Creds {
    Creds {
        id: fixture[name]["id"].as_str().unwrap_or_default().to_owned(),
        secret: fixture[name]["secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// A deployment holding a copy of the fixture: its SQLite file, or its
/// dump restored into a PostgreSQL cluster of its own whose transaction ids
/// are past the fixture's (a cluster behind them is refused; see
/// [`a_dump_restored_into_a_cluster_behind_its_log_is_refused`]); its key
/// file either way. The cluster, if any, lives as long as the guard.
async fn restored(backend: Backend) -> (Option<PrivateCluster>, Deployment) {
    let (cluster, deployment) = match backend {
        Backend::Sqlite => (None, Deployment::new(backend).await),
        Backend::Postgres => {
            let (cluster, deployment) = Deployment::on_private_cluster("upgrade");
            cluster.advance_epoch(1).unwrap_or_else(|e| panic!("{e}"));
            (Some(cluster), deployment)
        }
    };
    restore_into(&deployment, backend);
    (cluster, deployment)
}

fn restore_into(deployment: &Deployment, backend: Backend) {
    let from = fixture().join(backend_name(backend));
    let copy = |name: &str| {
        std::fs::copy(from.join(name), deployment.data.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    };
    copy("keys");
    match &deployment.database_url {
        None => copy("writ.db"),
        Some(url) => {
            let restore = Command::new("psql")
                .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
                .arg(from.join("dump.sql"))
                .output()
                .unwrap_or_else(|e| panic!("psql: {e}"));
            assert!(
                restore.status.success(),
                "{}",
                String::from_utf8_lossy(&restore.stderr)
            );
        }
    }
}

/// Transaction ids order a PostgreSQL log: in a cluster whose next id is
/// below the log's newest, new events would sort before old ones and the
/// projector would pass over them. Every command refuses such a database,
/// with the way out, and leaves it as it was.
#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn a_dump_restored_into_a_cluster_behind_its_log_is_refused() {
    // A new cluster's transaction ids start far below the fixture's.
    let (_cluster, deployment) = Deployment::on_private_cluster("behind");
    restore_into(&deployment, Backend::Postgres);
    let events = deployment.raw_event_count().await;
    let migrations_table = "SELECT count(*) AS n FROM information_schema.tables \
                            WHERE table_name = '_sqlx_migrations'";
    let migrations = deployment.raw_count(migrations_table).await;
    for command in [&["migrate"][..], &["serve"], &["audit", "verify"]] {
        let refused = deployment.writ(command).refused();
        assert!(
            refused.contains("restored into a cluster behind")
                && refused.contains("pg_resetwal --epoch=1"),
            "{command:?}: {refused}"
        );
    }
    assert_eq!(deployment.raw_event_count().await, events);
    assert_eq!(
        deployment.raw_count(migrations_table).await,
        migrations,
        "nothing migrated"
    );
}

async fn a_database_written_before_versioned_migrations_upgrades_in_place(backend: Backend) {
    let people: Value = serde_json::from_slice(
        &std::fs::read(fixture().join("people.json")).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (_cluster, deployment) = restored(backend).await;
    let events_written = people["events"][backend_name(backend)]
        .as_i64()
        .unwrap_or_default();
    assert!(events_written > 0, "{people}");
    assert_eq!(deployment.raw_event_count().await, events_written);

    let migrated = deployment.writ(&["migrate"]).success().stdout();
    assert!(
        migrated.contains("recorded migrations 1, 2, 3 of an earlier Writ as applied"),
        "{migrated}"
    );
    // What came after versioned migrations runs: nothing before it.
    assert!(
        migrated.contains("applied migration 4: token audience")
            && migrated.contains("applied migration 5: token dpop key")
            && migrated.contains("applied migration 6: sessions by subject")
            && migrated.contains("applied migration 7: token exchange lineage")
            && migrated.contains("applied migration 8: token status lists")
            && !migrated.contains("applied migration 1")
            && !migrated.contains("applied migration 3"),
        "{migrated}"
    );
    assert_eq!(deployment.raw_event_count().await, events_written);
    deployment.writ(&["replay", "--verify"]).success();
    deployment.writ(&["audit", "verify"]).success();

    let server = deployment.serve();
    let api = Api::new(&server);
    let service = creds(&people, "service");
    let token = api.client_credentials(&service).await;
    assert!(api.is_active(&service, &token).await);

    let web = creds(&people, "web");
    let username = people["user"].as_str().unwrap_or_default();
    let person = Browser::new(&server);
    let back = person
        .code_flow(&browser::oidc_params(&web.id, "after-upgrade"), username)
        .await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let redeemed = browser::redeem(&api, &web, &code).await;
    assert_eq!(redeemed.status, 200, "{}", redeemed.body);
    assert!(!redeemed.field("id_token").is_empty());
    let refreshed = api.refresh(&web, &redeemed.field("refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);

    // What was revoked before the upgrade stays revoked (checked by the
    // client each token was issued to, which could see it if it were live).
    for revoked in people["revoked"][backend_name(backend)]
        .as_array()
        .into_iter()
        .flatten()
    {
        let owner = creds(&people, revoked["client"].as_str().unwrap_or_default());
        let token = revoked["token"].as_str().unwrap_or_default();
        assert!(!api.is_active(&owner, token).await, "{revoked}");
    }
    drop(server);
    deployment.writ(&["replay", "--verify"]).success();
    deployment.writ(&["audit", "verify"]).success();
}

/// Writes the fixture with the `writ` named by `WRIT_TEST_BINARY` (see the
/// module's documentation): a code flow with consent, a refresh rotation,
/// a replayed refresh token, an RFC 7009 revocation, a logout and client
/// credentials, on each backend.
#[tokio::test]
#[ignore = "writes tests/fixtures/3b5fd0e; run by hand with WRIT_TEST_BINARY"]
async fn write_the_fixture() {
    assert!(
        std::env::var_os("WRIT_TEST_BINARY").is_some(),
        "WRIT_TEST_BINARY must name a writ built at 3b5fd0e, not {}",
        writ_binary().display()
    );
    let mut people = json!({"events": {}, "revoked": {}});
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let deployment = Deployment::with_keys(backend).await;
        let written = traffic(&deployment).await;
        let to = fixture().join(backend_name(backend));
        std::fs::create_dir_all(&to).unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(deployment.data.path().join("keys"), to.join("keys"))
            .unwrap_or_else(|e| panic!("{e}"));
        match &deployment.database_url {
            None => {
                let pool = deployment.data.pool().await;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                pool.close().await;
                std::fs::copy(deployment.data.database(), to.join("writ.db"))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            Some(url) => {
                let dump = Command::new("pg_dump")
                    .args(["--no-owner", "--no-privileges", "-d", url, "-f"])
                    .arg(to.join("dump.sql"))
                    .status()
                    .unwrap_or_else(|e| panic!("pg_dump: {e}"));
                assert!(dump.success());
            }
        }
        let name = backend_name(backend);
        people["events"][name] = written["events"].clone();
        people["revoked"][name] = written["revoked"].clone();
        for shared in ["service", "web", "user", "password"] {
            people[shared] = written[shared].clone();
        }
    }
    std::fs::write(
        fixture().join("people.json"),
        serde_json::to_string_pretty(&people).unwrap_or_default() + "\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

const SERVICE_SECRET: &str = "fixture-service-secret-0123456789abcdefghijklmnop";
const WEB_SECRET: &str = "fixture-web-secret-0123456789abcdefghijklmnopqrstu";
const USER: &str = "fixture-alice";

async fn traffic(deployment: &Deployment) -> Value {
    let with_secret = |id: &str, secret: &str, args: &[&str]| {
        let mut all = vec![
            "--json",
            "client",
            "create",
            "--client-id",
            id,
            "--secret-stdin",
        ];
        all.extend_from_slice(args);
        deployment
            .writ_with_stdin(&all, &format!("{secret}\n"))
            .success();
        Creds {
            id: id.to_owned(),
            secret: secret.to_owned(),
        }
    };
    let service = with_secret(
        "fixture-service",
        SERVICE_SECRET,
        &["--name", "Fixture service"],
    );
    let web = with_secret(
        "fixture-web",
        WEB_SECRET,
        &[
            "--name",
            "Fixture web",
            "--redirect-uri",
            REDIRECT_URI,
            "--post-logout-redirect-uri",
            browser::LOGOUT_URI,
            "--scope",
            "openid profile email offline_access",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
        ],
    );
    browser::user(deployment, USER);
    let server = deployment.serve();
    let api = Api::new(&server);

    let revoked_access = api.client_credentials(&service).await;
    assert_eq!(api.revoke(&service, &revoked_access).await.status, 200);
    api.client_credentials(&service).await;

    let person = Browser::new(&server);
    let back = person
        .code_flow(&browser::oidc_params(&web.id, "fixture-1"), USER)
        .await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let first = browser::redeem(&api, &web, &code).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let rotated = api.refresh(&web, &first.field("refresh_token")).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    // Replaying the first refresh token revokes the whole family.
    let replayed = api.refresh(&web, &first.field("refresh_token")).await;
    assert_eq!(replayed.error(), "invalid_grant");

    let again = person
        .code_flow(&browser::oidc_params(&web.id, "fixture-2"), USER)
        .await;
    let code = again.redirect_query(REDIRECT_URI)["code"].clone();
    let second = browser::redeem(&api, &web, &code).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let account = person.get("/account").await;
    let signed_out = person
        .post("/logout", &[("csrf", &account.hidden("csrf"))])
        .await;
    assert!(signed_out.status.is_success(), "{}", signed_out.html);
    drop(server);

    json!({
        "service": {"id": service.id, "secret": service.secret},
        "web": {"id": web.id, "secret": web.secret},
        "user": USER,
        "password": browser::PASSWORD,
        "events": deployment.raw_event_count().await,
        "revoked": [
            {"client": "service", "token": revoked_access},
            {"client": "web", "token": rotated.field("access_token")},
            {"client": "web", "token": rotated.field("refresh_token")},
            {"client": "web", "token": second.field("access_token")},
            {"client": "web", "token": second.field("refresh_token")},
        ],
    })
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}
