//! SQLite's write lock taken in turn (`Store::write_turn`): another writer
//! of this process gets it between two batches of a committer that never
//! idles, and no batch commits while it holds it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

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

/// Fails the test instead of hanging when the appenders stop committing.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_micros(200)).await;
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
    until("the first batches", || committed() >= 20).await;
    let mut writer = Conn::connect(store.target())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for round in 0..20 {
        let held = store.write_turn().await;
        assert!(held.is_some(), "SQLite has a write turn");
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
        // A second writer queues while the turn is held, as the committer
        // may have: once it is let go, at most that one batch comes first.
        // Unconstrained: a future out of tokio's cooperative budget would
        // return before it queued.
        let mut next = std::pin::pin!(tokio::task::unconstrained(store.write_turn()));
        let mut context = Context::from_waker(Waker::noop());
        assert!(
            next.as_mut().poll(&mut context).is_pending(),
            "round {round}: the turn is held"
        );
        let released_at = committed();
        drop(held);
        let next = next.await;
        let waited = committed() - released_at;
        assert!(
            waited <= 1,
            "round {round}: the turn came {waited} batches later"
        );
        drop(next);
        until("the committer's next batch", || {
            committed() > released_at + waited
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for appender in appenders {
        appender.await.unwrap_or_else(|e| panic!("{e}"));
    }
}
