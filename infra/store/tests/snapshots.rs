//! Snapshots for aggregates whose streams grow without end (a Shared
//! Signals stream): committed with the events that cross each interval,
//! one row per stream, and loading from one gives the state every event
//! gives.

use cqrs_es::Aggregate;
use writ_domain::ssf_stream::{Delivery, SsfStream, SsfStreamCommand, StreamConfig};
use writ_store::executor::Stream;
use writ_store::statement::Statement;
use writ_store::{Executor, Metadata, RowExt, Store};
use writ_testing::{open_store, Backend};

writ_testing::on_both_backends!(a_long_stream_loads_from_its_snapshot_to_the_same_state);

fn position(n: usize) -> String {
    format!("{n:020}")
}

async fn a_long_stream_loads_from_its_snapshot_to_the_same_state(backend: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store: Store = open_store(backend, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let executor = Executor::new(store.clone(), writ_store::services::system());
    let metadata = Metadata::cli("test");
    let create = SsfStreamCommand::Create {
        receiver: "rx".into(),
        config: StreamConfig {
            delivery: Delivery::Poll,
            events_requested: None,
            description: None,
        },
        start_after: position(0),
    };
    executor
        .execute_with::<SsfStream>("st", create, &metadata, Vec::new(), Stream::New)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for n in 1..=150 {
        let command = SsfStreamCommand::RecordDelivered {
            up_to: position(n),
            count: 1,
        };
        executor
            .execute::<SsfStream>("st", command, &metadata)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let rows = store
        .db()
        .fetch_all(&Statement::new(
            "SELECT last_sequence FROM snapshots WHERE aggregate_type = 'SsfStream' AND aggregate_id = 'st'",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 1, "one snapshot row per stream");
    assert_eq!(
        rows[0].int("last_sequence"),
        Some(128),
        "taken at the last multiple of 64 the stream crossed (151 events)"
    );
    let loaded = executor
        .load::<SsfStream>("st")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.delivered_up_to, position(150));
    // The same state from every event, without the snapshot.
    let mut folded = SsfStream::default();
    let (events, _) = store
        .events_of_type_after(writ_store::START, SsfStream::TYPE, 1_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.len(), 151);
    for event in events {
        folded.apply(serde_json::from_value(event.payload).unwrap_or_else(|e| panic!("{e}")));
    }
    assert_eq!(
        serde_json::to_value(&folded).unwrap_or_default(),
        serde_json::to_value(&loaded).unwrap_or_default()
    );
    // A command after the snapshot sees the state it holds.
    let stale = SsfStreamCommand::RecordDelivered {
        up_to: position(140),
        count: 1,
    };
    assert!(executor
        .execute::<SsfStream>("st", stale, &metadata)
        .await
        .is_err());
}
