//! The projector as its own process under faults: a poison event stops its
//! projection and the metric says so (F10); SIGKILL while a slice's
//! transaction is open loses nothing and the model equals a rebuild (F4,
//! F7); a long transaction elsewhere on the cluster pauses it, is
//! reported, and loses nothing (F13); SIGTERM hands the lock over at once.

use std::time::{Duration, Instant};

use writ_projector::rebuild_and_compare;

use crate::harness::{eventually, rounds, Backend, Deployment, Server};
use crate::oauth::{self, Api};
use crate::split::{lock_holder, metric, start};

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn the_split_commands_refuse_sqlite_and_a_missing_issuer_with_one_line() {
    let embedded = Deployment::with_keys(Backend::Sqlite).await;
    for process in ["command-api", "query-api", "projector"] {
        let refusal = embedded.writ(&[process]).refused();
        assert!(refusal.contains("--database-url"), "{process}: {refusal}");
    }
    let shared = Deployment::with_keys(Backend::Postgres).await;
    for process in ["command-api", "query-api"] {
        let refusal = shared.writ(&[process, "--listen", "127.0.0.1:0"]).refused();
        assert!(refusal.contains("--issuer"), "{process}: {refusal}");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn a_poison_event_stops_the_projection_and_the_metric_shows_it() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let service = oauth::client(&deployment, &[]);
    let projector = start(&deployment, "projector", &[]);
    let api = Api::new(&projector);
    let events = deployment.event_count().await;
    eventually("the projector to catch up", || async {
        (deployment.count("SELECT count(*) FROM audit_index").await == events).then_some(())
    })
    .await;
    assert_eq!(metric(&api, "writ_projections_stopped").await, Some(0.0));
    deployment
        .count(
            "WITH poison AS (INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, hash) \
             VALUES ('Grant', 'from-the-future', 1, 'GrantTeleported', '9.0', '{}', '{}', 'x') RETURNING 1) SELECT count(*) FROM poison",
        )
        .await;
    eventually("the stopped metric", || async {
        (metric(&api, "writ_projections_stopped").await? == 1.0).then_some(())
    })
    .await;
    // The log is read by another thread, so the line may trail the metric.
    eventually("a clear log line that names the event", || async {
        projector
            .log_lines()
            .iter()
            .any(|l| l.contains("GrantTeleported") && l.contains("stopped"))
            .then_some(())
    })
    .await;
    let writes_after = start(&deployment, "command-api", &[]);
    Api::new(&writes_after).client_credentials(&service).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        deployment.count("SELECT count(*) FROM audit_index").await,
        events,
        "nothing after the poison event is projected, nothing skipped"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn a_projector_killed_inside_a_slice_resumes_and_equals_a_rebuild() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let service = oauth::client(&deployment, &[]);
    let command = start(&deployment, "command-api", &[]);
    let writes = Api::new(&command);
    // A backlog of more than 10,000 events (two per token).
    rounds(5_050, 32, |_| async {
        writes.client_credentials(&service).await;
    })
    .await;
    let events = deployment.event_count().await;
    assert!(events >= 10_000, "{events}");
    let projector = start(&deployment, "projector", &[]);
    eventually("a slice transaction to be open", || async {
        let holder = lock_holder(&deployment).await;
        let open = deployment
            .count(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = {holder} AND backend_xid IS NOT NULL"
            ))
            .await;
        (holder > 0 && open == 1).then_some(())
    })
    .await;
    projector.kill();
    let projected = deployment.count("SELECT count(*) FROM audit_index").await;
    assert!(
        projected < events,
        "killed before the end: {projected} of {events}"
    );
    let restarted = start(&deployment, "projector", &[]);
    eventually("the restarted projector to catch up", || async {
        (deployment.count("SELECT count(*) FROM audit_index").await == events).then_some(())
    })
    .await;
    restarted.stop();
    let store = deployment.store().await;
    let differences = rebuild_and_compare(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(differences.is_empty(), "F4/F7: {differences:?}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn a_standby_takes_over_at_once_after_sigterm() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let first = start(&deployment, "projector", &[]);
    eventually("the first to lead", || async {
        (metric(&Api::new(&first), "writ_projector_active").await? == 1.0).then_some(())
    })
    .await;
    let second = start(&deployment, "projector", &[]);
    let second_api = Api::new(&second);
    let stopped = Instant::now();
    first.stop();
    eventually("the standby to lead", || async {
        (metric(&second_api, "writ_projector_active").await? == 1.0).then_some(())
    })
    .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
}

/// F13 holds a transaction open on the cluster, so it gets a cluster of its own.
#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn a_long_transaction_pauses_the_projector_which_reports_it_and_loses_nothing() {
    let (cluster, deployment) = Deployment::on_private_cluster("f13");
    let service = oauth::client(&deployment, &[]);
    let command = start(&deployment, "command-api", &[]);
    let writes = Api::new(&command);
    let projector: Server = start(&deployment, "projector", &[]);
    let before = deployment.event_count().await;
    eventually("the projector to catch up", || async {
        (deployment.count("SELECT count(*) FROM audit_index").await == before).then_some(())
    })
    .await;

    let mut blocker = <sqlx::PgConnection as sqlx::Connection>::connect(&cluster.url("f13"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("BEGIN")
        .execute(&mut blocker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut blocker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..20 {
        writes.client_credentials(&service).await;
    }
    eventually("the projector to name the open transaction", || async {
        projector
            .log_lines()
            .iter()
            .any(|l| l.contains("held back by an open transaction"))
            .then_some(())
    })
    .await;
    assert_eq!(
        deployment.count("SELECT count(*) FROM audit_index").await,
        before,
        "nothing passes the open transaction"
    );
    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let after = deployment.event_count().await;
    eventually("the projector to resume", || async {
        (deployment.count("SELECT count(*) FROM audit_index").await == after).then_some(())
    })
    .await;
    assert_eq!(after, before + 40, "every event of the pause is there");
}

/// F1 for the split processes: PostgreSQL stops under them (private cluster).
#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn with_postgres_down_the_split_processes_refuse_writes_and_recover() {
    let (cluster, deployment) = Deployment::on_private_cluster("f1split");
    let service = oauth::client(&deployment, &[]);
    let processes = [
        start(&deployment, "command-api", &[]),
        start(&deployment, "query-api", &[]),
        start(&deployment, "projector", &[]),
    ];
    let [command, query, projector] = &processes;
    let (writes, reads) = (Api::new(command), Api::new(query));
    let issued = writes.client_credentials(&service).await;
    let events = deployment.event_count().await;

    cluster.stop().unwrap_or_else(|e| panic!("{e}"));
    let token = writes
        .token(&service, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(token.status, 503, "F1: {}", token.body);
    assert_eq!(writes.revoke(&service, &issued).await.status, 503, "R53");
    for server in [command, query, projector] {
        let api = Api::new(server);
        assert_eq!(api.status("/readyz").await, 503, "readiness fails");
        assert_eq!(api.status("/healthz").await, 200, "liveness holds");
    }

    cluster.start().unwrap_or_else(|e| panic!("{e}"));
    eventually("the command API to reach PostgreSQL again", || async {
        let reply = writes
            .token(&service, &[("grant_type", "client_credentials")])
            .await;
        (reply.status == 200).then_some(())
    })
    .await;
    assert_eq!(
        deployment.event_count().await,
        events + 2,
        "nothing half-written; one grant after"
    );
    assert!(
        reads.is_active(&service, &issued).await,
        "the failed revocation changed nothing"
    );
    assert_eq!(writes.revoke(&service, &issued).await.status, 200);
    assert!(!reads.is_active(&service, &issued).await);
    let after = deployment.event_count().await;
    eventually("the projector to resume", || async {
        (deployment.count("SELECT count(*) FROM audit_index").await == after).then_some(())
    })
    .await;
}
