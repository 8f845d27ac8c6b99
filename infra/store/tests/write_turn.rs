//! SQLite's write lock taken in turn (`Store::write_turn`): another writer
//! of this process gets it between two batches of a committer that never
//! idles, and no batch commits while it holds it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cqrs_es::persist::SerializedEvent;
use serde_json::json;
use writ_store::Conn;
use writ_testing::{open_store, Backend};

fn event(aggregate_id: &str, sequence: usize) -> SerializedEvent {
    SerializedEvent {
        aggregate_id: aggregate_id.into(),
        sequence,
        aggregate_type: "LoginDay".into(),
        event_type: "LoginFailed".into(),
        event_version: "1.0".into(),
        payload: json!({"LoginFailed": {"sub": aggregate_id, "at": "2026-01-01T00:00:00Z"}}),
        metadata: json!({"actor": "test"}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waiting_for_the_turn_gets_it_between_two_batches_of_a_busy_committer() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(Backend::Sqlite, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stop = Arc::new(AtomicBool::new(false));
    let appenders: Vec<_> = (0..16)
        .map(|appender| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut sequence = 0;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    let stream = format!("appender-{appender}");
                    if let Err(err) = store.append(vec![event(&stream, sequence)], vec![]).await {
                        panic!("append failed: {err}");
                    }
                }
            })
        })
        .collect();
    let committed = || store.metrics().batches_committed.get();
    while committed() < 20 {
        tokio::task::yield_now().await;
    }
    let mut writer = Conn::connect(store.target())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for round in 0..20 {
        let asked_at = committed();
        let turn = store.write_turn().await;
        assert!(turn.is_some(), "SQLite has a write turn");
        let waited = committed() - asked_at;
        // The batch under way when asked, and at most one more that took
        // the turn between the count and the request.
        assert!(
            waited <= 2,
            "round {round}: the turn came {waited} batches later"
        );
        let held_at = committed();
        writer
            .batch("BEGIN IMMEDIATE; UPDATE projector_checkpoints SET position = position WHERE 0; COMMIT")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            committed(),
            held_at,
            "round {round}: a batch committed in another writer's turn"
        );
        drop(turn);
        while committed() == held_at {
            tokio::task::yield_now().await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for appender in appenders {
        appender.await.unwrap_or_else(|e| panic!("{e}"));
    }
}
