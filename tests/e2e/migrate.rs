//! `writ migrate`: it says what it did, is a no-op the second time, and a
//! database from a newer Writ is refused, by it and by `serve`, with one
//! line and nothing changed.

use crate::harness::{Backend, Deployment};

writ_testing::on_both_backends!(
    migrate_says_what_it_applied_and_then_that_nothing_is_left,
    a_database_from_a_newer_writ_is_refused_by_migrate_and_serve,
);

async fn migrate_says_what_it_applied_and_then_that_nothing_is_left(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let first = deployment.writ(&["migrate"]).success().stdout();
    for line in [
        "applied migration 1: log state and read tables",
        "applied migration 2: audit checkpoints",
        "applied migration 3: audit index by time",
        "applied migration 4: token audience",
        "applied migration 5: token dpop key",
        "applied migration 6: sessions by subject",
        "applied migration 7: token exchange lineage",
        "applied migration 8: token status lists",
        "applied migration 9: audit subject of grants",
        "is at migration 9",
    ] {
        assert!(first.contains(line), "{line:?} in {first}");
    }
    let second = deployment.writ(&["migrate"]).success().stdout();
    assert!(!second.contains("applied"), "{second}");
    assert!(second.contains("is up to date at migration 9"), "{second}");
    let json = deployment.writ(&["migrate", "--json"]).success().json();
    assert_eq!(json["current"], 9);
    assert_eq!(json["applied"], serde_json::json!([]));
}

async fn a_database_from_a_newer_writ_is_refused_by_migrate_and_serve(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    deployment.writ(&["migrate"]).success();
    deployment
        .writ(&["client", "create", "--name", "before"])
        .success();
    let mut conn = deployment.conn().await;
    let events = deployment.raw_event_count().await;
    assert!(events > 0);
    conn.batch(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         SELECT 99, 'from a newer Writ', TRUE, checksum, 0 FROM _sqlx_migrations WHERE version = 1;",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let line = deployment.writ(&["migrate"]).refused();
    assert!(
        line.contains("newer Writ") && line.contains("migration 99"),
        "{line}"
    );
    let line = deployment.writ(&["client", "list"]).refused();
    assert!(line.contains("newer Writ"), "{line}");
    let mut serve = deployment.command(&["serve", "--listen", "127.0.0.1:0"]);
    let exited = serve
        .output()
        .unwrap_or_else(|e| panic!("cannot run writ: {e}"));
    assert!(!exited.status.success(), "serve must refuse to start");
    let stderr = String::from_utf8_lossy(&exited.stderr);
    assert!(stderr.contains("newer Writ"), "{stderr}");
    assert_eq!(
        deployment.raw_event_count().await,
        events,
        "nothing recorded"
    );
}
