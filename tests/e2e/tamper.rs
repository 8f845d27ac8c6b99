//! Tampering with the log directly in the database, each way the issue
//! names, is detected and located by `writ audit verify`: per-stream hash
//! chains catch changes inside a stream, signed checkpoints what chains
//! cannot see (a stream's newest event gone, the log's tail cut, an event
//! rewritten with its stream's hashes recomputed).

use writ_store::statement::Statement;
use writ_store::{chain_link, event_columns, RowExt, RowForHash, StoredEvent};

use crate::harness::{Backend, Deployment};
use crate::oauth;

/// Three clients, each a stream of three events (registered, updated,
/// disabled), sealed by a checkpoint; then one more client, unsealed.
async fn sealed_log(backend: Backend) -> (Deployment, Vec<String>) {
    let deployment = Deployment::with_keys(backend).await;
    let mut clients = Vec::new();
    for n in 0..3 {
        let client = oauth::client(&deployment, &[]);
        let name = format!("renamed {n}");
        deployment
            .writ(&["client", "update", &client.id, "--name", &name])
            .success();
        deployment
            .writ(&["client", "disable", &client.id])
            .success();
        clients.push(client.id);
    }
    deployment.writ(&["audit", "seal"]).success();
    oauth::client(&deployment, &[]);
    let intact = deployment.writ(&["audit", "verify"]);
    assert!(intact.0.status.success(), "{}", intact.stdout());
    assert!(
        intact
            .stdout()
            .contains("1 event(s) after it are not sealed"),
        "{}",
        intact.stdout()
    );
    (deployment, clients)
}

async fn sql(deployment: &Deployment, statement: Statement) {
    deployment
        .conn()
        .await
        .execute(&[statement])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

fn verify_fails(deployment: &Deployment) -> String {
    let run = deployment.writ(&["audit", "verify"]);
    assert!(
        !run.0.status.success(),
        "tampering went unnoticed: {}",
        run.stdout()
    );
    assert!(
        run.stderr().contains("fails verification"),
        "{}",
        run.stderr()
    );
    run.stdout()
}

async fn events_of(deployment: &Deployment, client: &str) -> Vec<StoredEvent> {
    let store = deployment.store().await;
    let statement = Statement::new(format!(
        "SELECT {} FROM events WHERE aggregate_type = 'Client' AND aggregate_id = $1 ORDER BY sequence",
        event_columns(store.dialect())
    ))
    .text(client);
    store
        .db()
        .fetch_all(&statement)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|row| StoredEvent::from_row(row).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn payload_update(deployment: &Deployment) -> &'static str {
    match deployment.database_url {
        Some(_) => "UPDATE events SET payload = $1::json WHERE position = $2",
        None => "UPDATE events SET payload = $1 WHERE position = $2",
    }
}

writ_testing::on_both_backends!(
    an_edited_payload_breaks_its_stream,
    a_deleted_event_breaks_its_stream,
    two_swapped_events_break_their_stream,
    a_streams_deleted_newest_event_fails_the_checkpoint,
    a_cut_tail_fails_the_checkpoint,
    a_rewrite_with_recomputed_hashes_fails_the_checkpoint,
);

async fn an_edited_payload_breaks_its_stream(backend: Backend) {
    let (deployment, clients) = sealed_log(backend).await;
    let event = events_of(&deployment, &clients[1]).await.remove(1);
    let edited = event.payload.to_string().replace("renamed 1", "renamed X");
    sql(
        &deployment,
        Statement::new(payload_update(&deployment))
            .text(edited)
            .int(event.position),
    )
    .await;
    let report = verify_fails(&deployment);
    let expected = format!(
        "broken: Client/{} at sequence {}",
        clients[1], event.sequence
    );
    assert!(report.contains(&expected), "{report}");
}

async fn a_deleted_event_breaks_its_stream(backend: Backend) {
    let (deployment, clients) = sealed_log(backend).await;
    let events = events_of(&deployment, &clients[0]).await;
    sql(
        &deployment,
        Statement::new("DELETE FROM events WHERE position = $1").int(events[1].position),
    )
    .await;
    let report = verify_fails(&deployment);
    let expected = format!(
        "broken: Client/{} at sequence {}",
        clients[0], events[2].sequence
    );
    assert!(
        report.contains(&expected),
        "the link after the gap: {report}"
    );
}

async fn two_swapped_events_break_their_stream(backend: Backend) {
    let (deployment, clients) = sealed_log(backend).await;
    let events = events_of(&deployment, &clients[2]).await;
    let (a, b) = (events[1].sequence, events[2].sequence);
    let renumber = |from: i64, to: i64| {
        Statement::new("UPDATE events SET sequence = $1 WHERE aggregate_type = 'Client' AND aggregate_id = $2 AND sequence = $3")
            .int(to)
            .text(clients[2].clone())
            .int(from)
    };
    sql(&deployment, renumber(a, 1_000_000)).await;
    sql(&deployment, renumber(b, a)).await;
    sql(&deployment, renumber(1_000_000, b)).await;
    let report = verify_fails(&deployment);
    assert!(
        report.contains(&format!("broken: Client/{}", clients[2])),
        "{report}"
    );
}

async fn a_streams_deleted_newest_event_fails_the_checkpoint(backend: Backend) {
    let (deployment, clients) = sealed_log(backend).await;
    let newest = events_of(&deployment, &clients[0]).await.remove(2);
    sql(
        &deployment,
        Statement::new("DELETE FROM events WHERE position = $1").int(newest.position),
    )
    .await;
    let report = verify_fails(&deployment);
    assert!(
        report.contains("0 broken stream(s)"),
        "chains cannot see it: {report}"
    );
    assert!(
        report.contains("checkpoint ") && report.contains("damage after the start of the log"),
        "{report}"
    );
}

async fn a_cut_tail_fails_the_checkpoint(backend: Backend) {
    let (deployment, _) = sealed_log(backend).await;
    // The unsealed client's events and the last ten sealed ones.
    let cut = match deployment.database_url {
        Some(_) => "DELETE FROM events WHERE position IN (SELECT position FROM events ORDER BY txid DESC, position DESC LIMIT 11)",
        None => "DELETE FROM events WHERE position IN (SELECT position FROM events ORDER BY position DESC LIMIT 11)",
    };
    sql(&deployment, Statement::new(cut)).await;
    let report = verify_fails(&deployment);
    assert!(report.contains("its tail was cut"), "{report}");
}

async fn a_rewrite_with_recomputed_hashes_fails_the_checkpoint(backend: Backend) {
    let (deployment, clients) = sealed_log(backend).await;
    let events = events_of(&deployment, &clients[1]).await;
    let mut previous = events[0].hash.clone();
    for (index, event) in events.iter().enumerate().skip(1) {
        let mut payload = event.payload.clone();
        if index == 1 {
            payload = serde_json::from_str(&payload.to_string().replace("renamed 1", "forged"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let hash = chain_link(
            &previous,
            &RowForHash {
                payload: &payload,
                ..RowForHash::of(event)
            },
        );
        let update = match deployment.database_url {
            Some(_) => "UPDATE events SET payload = $1::json, hash = $2 WHERE position = $3",
            None => "UPDATE events SET payload = $1, hash = $2 WHERE position = $3",
        };
        sql(
            &deployment,
            Statement::new(update)
                .text(payload.to_string())
                .text(hash.clone())
                .int(event.position),
        )
        .await;
        previous = hash;
    }
    let report = verify_fails(&deployment);
    assert!(
        report.contains("0 broken stream(s)"),
        "the chains were recomputed: {report}"
    );
    assert!(report.contains("not the ones it sealed"), "{report}");
    let store = deployment.store().await;
    let forged = store
        .db()
        .fetch_optional(&Statement::new(
            "SELECT count(*) AS n FROM clients WHERE name = 'forged'",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .and_then(|row| row.int("n"));
    assert_eq!(
        forged,
        Some(0),
        "the read model was not touched, only the log"
    );
}

#[tokio::test]
async fn an_altered_checkpoint_fails_its_signature() {
    let (deployment, _) = sealed_log(Backend::Sqlite).await;
    sql(
        &deployment,
        Statement::new("UPDATE audit_checkpoints SET event_count = event_count - 1"),
    )
    .await;
    let report = verify_fails(&deployment);
    assert!(report.contains("its signature does not verify"), "{report}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn serve_seals_the_log_every_checkpoint_interval() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let writ = deployment.serve_with(&["--checkpoint-interval", "100ms"]);
    let service = oauth::client(&deployment, &[]);
    crate::oauth::Api::new(&writ)
        .client_credentials(&service)
        .await;
    let events = deployment.event_count().await;
    crate::harness::eventually("a checkpoint sealing every event", || async {
        let sealed = deployment
            .count("SELECT coalesce(max(event_count), 0) FROM audit_checkpoints")
            .await;
        (sealed >= events).then_some(())
    })
    .await;
    let run = deployment.writ(&["audit", "verify"]).success();
    assert!(run.stdout().contains("0 failed"), "{}", run.stdout());
}
