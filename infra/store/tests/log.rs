//! The log on both backends: group commit, conflicts and retries, stream
//! lengths, the hash chain; on SQLite, the write turn. Real SQLite files
//! in temporary directories and a fresh PostgreSQL database per test.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use cqrs_es::persist::SerializedEvent;
use serde_json::json;
use writ_domain::client::Client;
use writ_domain::consent::{Consent, ConsentCommand};
use writ_domain::grant::{Grant, GrantCommand, TokenRequest};
use writ_domain::login::{LoginCommand, LoginDay};
use writ_domain::values::ScopeSet;
use writ_store::executor::Stream;
use writ_store::statement::Statement;
use writ_store::{verify_chains, AppendError, Conn, Dialect, RowExt};
use writ_store::{Executor, Metadata, Store};
use writ_testing::{open_store, service_client_registration, Backend};

writ_testing::on_both_backends!(
    a_batch_with_one_conflicting_command_commits_the_others,
    a_command_that_loses_a_conflict_is_retried_on_fresh_state,
    parallel_commands_on_one_stream_take_turns_without_conflicts,
    a_thousand_grants_leave_the_client_stream_alone_and_every_stream_short,
    positions_are_gap_free_and_follow_commit_order,
    a_batch_numbers_its_events_in_its_order,
    the_chain_verifies_and_an_altered_payload_is_detected,
    an_unknown_event_is_refused_by_the_committer_and_changes_nothing,
    commits_are_signalled_with_their_cursor,
    a_watcher_of_some_event_types_hears_only_of_batches_holding_them,
);

/// The temporary directory lives as long as the store is used.
async fn open(backend: Backend) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(backend, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, store)
}

async fn texts(store: &Store, sql: &str, column: &str) -> Vec<String> {
    let rows = store
        .db()
        .fetch_all(&Statement::new(sql))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    rows.iter().filter_map(|row| row.text(column)).collect()
}

async fn number(store: &Store, sql: &str) -> i64 {
    store
        .db()
        .scalar_i64(&Statement::new(sql))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn executor(store: &Store) -> Executor {
    Executor::new(store.clone(), writ_store::services::system())
}

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

/// Blocks the committer's next batch from another connection until
/// released, so commands queue up and land in one batch: SQLite's write
/// lock, or an EXCLUSIVE lock on PostgreSQL's `events` (reads pass, the
/// batch's insert waits).
async fn hold_write_lock(store: &Store) -> Conn {
    let mut conn = Conn::connect(store.target())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let lock = match conn.dialect() {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN; LOCK TABLE events IN EXCLUSIVE MODE",
    };
    conn.batch(lock).await.unwrap_or_else(|e| panic!("{e}"));
    conn
}

async fn release(mut conn: Conn) {
    conn.batch("ROLLBACK")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Sends one append and waits until the committer has started its batch
/// (and is now waiting for the lock).
async fn warm_up(
    store: &Store,
) -> tokio::task::JoinHandle<Result<writ_store::AppendReceipt, AppendError>> {
    let first = tokio::spawn({
        let store = store.clone();
        async move { store.append(vec![event("warm-up", 1)], vec![]).await }
    });
    wait_until("the first batch to start", || {
        store.metrics().batches_started.get() == 1
    })
    .await;
    first
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn a_batch_with_one_conflicting_command_commits_the_others(backend: Backend) {
    let (_dir, store) = open(backend).await;
    let lock = hold_write_lock(&store).await;
    // The first append takes the committer into a transaction that waits
    // for the lock; everything sent meanwhile forms the next batch.
    let first = warm_up(&store).await;
    let mut appends = Vec::new();
    for id in ["a", "b", "c", "dup", "dup", "d"] {
        let store = store.clone();
        appends.push(tokio::spawn(async move {
            store.append(vec![event(id, 1)], vec![]).await
        }));
    }
    wait_until("six queued commands", || store.queued_appends() == 6).await;
    release(lock).await;
    assert!(first.await.map(|r| r.is_ok()).unwrap_or(false));
    let mut outcomes = Vec::new();
    for append in appends {
        outcomes.push(append.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let conflicts = outcomes
        .iter()
        .filter(|o| matches!(o, Err(AppendError::Conflict)))
        .count();
    let committed = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!((committed, conflicts), (5, 1));
    assert_eq!(
        store.metrics().batches_committed.get(),
        2,
        "the six commands formed one batch"
    );
    assert_eq!(store.event_count().await.ok(), Some(6));
}

fn consent(scopes: &str) -> ConsentCommand {
    ConsentCommand::Grant {
        sub: "s1".into(),
        client_id: "c1".into(),
        scopes: ScopeSet::parse(scopes).unwrap_or_default(),
        request_id: "r".into(),
    }
}

/// Two executors (as in two processes; one executor lets commands on a
/// stream take turns) decide on the same state; one loses and is re-decided.
async fn a_command_that_loses_a_conflict_is_retried_on_fresh_state(backend: Backend) {
    let (_dir, store) = open(backend).await;
    let lock = hold_write_lock(&store).await;
    let first = warm_up(&store).await;
    let mut runs = Vec::new();
    for scopes in ["openid", "email"] {
        let executor = executor(&store);
        runs.push(tokio::spawn(async move {
            executor
                .execute::<Consent>("s1/c1", consent(scopes), &Metadata::cli("test"))
                .await
        }));
    }
    wait_until("both commands queued", || store.queued_appends() == 2).await;
    release(lock).await;
    assert!(first.await.map(|r| r.is_ok()).unwrap_or(false));
    for run in runs {
        assert!(
            run.await.map(|r| r.is_ok()).unwrap_or(false),
            "both commands succeed"
        );
    }
    assert!(
        store.metrics().conflicts_retried.get() > 0,
        "the retry path ran"
    );
    let types = texts(
        &store,
        "SELECT event_type FROM events WHERE aggregate_id = 's1/c1' ORDER BY sequence",
        "event_type",
    )
    .await;
    assert_eq!(types, ["ConsentGranted", "ConsentExtended"]);
}

/// Inside one executor, parallel commands on one stream take turns: all
/// succeed without a single conflict, however many there are.
async fn parallel_commands_on_one_stream_take_turns_without_conflicts(backend: Backend) {
    let (_dir, store) = open(backend).await;
    let executor = executor(&store);
    let runs: Vec<_> = (0..16)
        .map(|_| {
            let executor = executor.clone();
            tokio::spawn(async move {
                let command = LoginCommand::RecordOutcome {
                    sub: "s1".into(),
                    succeeded: false,
                };
                executor
                    .execute::<LoginDay>("a1/2026-01-01", command, &Metadata::cli("test"))
                    .await
            })
        })
        .collect();
    for run in runs {
        assert!(run.await.map(|r| r.is_ok()).unwrap_or(false));
    }
    assert_eq!(store.metrics().conflicts_retried.get(), 0);
    assert_eq!(
        number(
            &store,
            "SELECT count(*) FROM events WHERE aggregate_type = 'LoginDay'"
        )
        .await,
        16
    );
}

async fn a_thousand_grants_leave_the_client_stream_alone_and_every_stream_short(backend: Backend) {
    let (_dir, store) = open(backend).await;
    let executor = executor(&store);
    let register = service_client_registration("svc");
    executor
        .execute::<Client>("svc", register, &Metadata::cli("test"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let executor = Arc::new(executor);
    let mut workers = Vec::new();
    for worker in 0..32 {
        let executor = executor.clone();
        workers.push(tokio::spawn(async move {
            for n in (worker..1000).step_by(32) {
                let gid = format!("grant-{n}");
                let command = GrantCommand::GrantClientCredentials {
                    gid: gid.clone(),
                    client_id: "svc".into(),
                    scopes: ScopeSet::parse("api").unwrap_or_default(),
                    audience: vec![],
                    tokens: TokenRequest {
                        access_ttl_secs: 300,
                        opaque_access_hash: None,
                        refresh: None,
                        audience: None,
                        dpop_jkt: None,
                        status: None,
                    },
                };
                executor
                    .execute_with::<Grant>(
                        &gid,
                        command,
                        &Metadata::cli("test"),
                        vec![],
                        Stream::New,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap_or_else(|e| panic!("{e}"));
    }
    let client_events = number(
        &store,
        "SELECT count(*) FROM events WHERE aggregate_type = 'Client'",
    )
    .await;
    let longest = number(&store, "SELECT max(n) FROM (SELECT count(*) AS n FROM events GROUP BY aggregate_type, aggregate_id) AS lengths").await;
    let grants = number(
        &store,
        "SELECT count(*) FROM grants WHERE client_id = 'svc' AND status = 'active'",
    )
    .await;
    assert_eq!(client_events, 1);
    assert!(longest <= 10, "longest stream has {longest} events");
    assert_eq!(grants, 1000, "every grant has its inline row");
    assert!(
        store.metrics().batches_committed.get() < 1000,
        "group commit batched the grants"
    );
}

async fn positions_are_gap_free_and_follow_commit_order(backend: Backend) {
    let (_dir, store) = open(backend).await;
    let mut cursors = Vec::new();
    for n in 0..20 {
        let receipt = store
            .append(
                vec![event(&format!("s{n}"), 1), event(&format!("s{n}"), 2)],
                vec![],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        cursors.push(receipt.cursor().unwrap_or_default());
    }
    // On PostgreSQL the reader stops below the oldest open transaction on
    // the whole cluster (other tests' included), so it may lag: wait.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let read = loop {
        let read = store
            .events_after(writ_store::START, 1000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if read.len() >= 40 || tokio::time::Instant::now() > deadline {
            break read;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let positions: Vec<i64> = read.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        (1..=40).collect::<Vec<i64>>(),
        "the reader returns every event once, in order"
    );
    let shown: Vec<String> = cursors.iter().map(ToString::to_string).collect();
    let mut sorted = shown.clone();
    sorted.sort();
    assert_eq!(shown, sorted, "cursor strings sort in commit order");
    assert!(
        shown
            .last()
            .is_some_and(|c| c.ends_with("00000000000000000040")),
        "{shown:?}"
    );
}

/// Concurrent commands share batches: each command's events take
/// consecutive positions in sequence order, and what each was told is what
/// the log holds (on PostgreSQL the identity numbers a batch's rows and the
/// committer matches them back).
async fn a_batch_numbers_its_events_in_its_order(backend: Backend) {
    let (_dir, store) = open(backend).await;
    let mut appends = tokio::task::JoinSet::new();
    for n in 0..32 {
        let store = store.clone();
        let stream = format!("b{n}");
        appends.spawn(async move {
            store
                .append((1..=3).map(|s| event(&stream, s)).collect(), vec![])
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        });
    }
    let mut told = std::collections::HashMap::new();
    while let Some(receipt) = appends.join_next().await {
        let stored = receipt.unwrap_or_else(|e| panic!("{e}")).stored;
        let positions: Vec<i64> = stored.iter().map(|e| e.position).collect();
        let first = positions[0];
        assert_eq!(positions, [first, first + 1, first + 2], "{stored:?}");
        for event in stored {
            told.insert((event.aggregate_id, event.sequence), event.position);
        }
    }
    let logged = store
        .db()
        .fetch_all(&Statement::new(
            "SELECT aggregate_id, sequence, position FROM events",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let logged: std::collections::HashMap<(String, i64), i64> = logged
        .iter()
        .map(|row| {
            let key = (
                row.text("aggregate_id").unwrap_or_default(),
                row.int("sequence").unwrap_or(0),
            );
            (key, row.int("position").unwrap_or(0))
        })
        .collect();
    assert_eq!(told.len(), 96);
    assert_eq!(logged, told);
}

async fn the_chain_verifies_and_an_altered_payload_is_detected(backend: Backend) {
    let (_dir, store) = open(backend).await;
    for n in 1..=3 {
        store
            .append(vec![event("stream", n)], vec![])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    store
        .append(vec![event("other", 1)], vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (breaks, checked) = verify_chains(store.db())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((breaks.len(), checked), (0, 4));

    let mut conn = Conn::connect(store.target())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let forge = match conn.dialect() {
        Dialect::Sqlite => "UPDATE events SET payload = replace(payload, 'stream', 'forged') WHERE aggregate_id = 'stream' AND sequence = 2",
        Dialect::Postgres => "UPDATE events SET payload = replace(payload::text, 'stream', 'forged')::json WHERE aggregate_id = 'stream' AND sequence = 2",
    };
    conn.batch(forge).await.unwrap_or_else(|e| panic!("{e}"));
    let (breaks, _) = verify_chains(store.db())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(breaks.len(), 1);
    assert_eq!(
        (breaks[0].aggregate_id.as_str(), breaks[0].sequence),
        ("stream", 2)
    );
}

async fn an_unknown_event_is_refused_by_the_committer_and_changes_nothing(backend: Backend) {
    let (_dir, store) = open(backend).await;
    let mut bogus = event("x", 1);
    bogus.event_type = "Nonsense".into();
    let outcome = store.append(vec![bogus], vec![]).await;
    assert!(
        matches!(outcome, Err(AppendError::Rejected(_))),
        "{outcome:?}"
    );
    assert_eq!(store.event_count().await.ok(), Some(0));
    // The store keeps working for the next command.
    assert!(store.append(vec![event("y", 1)], vec![]).await.is_ok());
}

async fn commits_are_signalled_with_their_cursor(backend: Backend) {
    let (_dir, store) = open(backend).await;
    let commits = store.commits();
    let receipt = store
        .append(vec![event("a", 1)], vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let committed = receipt.cursor().unwrap_or_default();
    assert_eq!(committed.position, 1);
    wait_until("the commit signal", || *commits.borrow() == committed).await;
}

async fn a_watcher_of_some_event_types_hears_only_of_batches_holding_them(backend: Backend) {
    static WATCHED: &[&str] = &["LoginFailed"];
    let (_dir, store) = open(backend).await;
    let watched = store.commits_of(WATCHED);
    let mut unwatched = event("other", 1);
    unwatched.event_type = "LoginSucceeded".into();
    unwatched.payload = json!({"LoginSucceeded": {"sub": "other", "at": "2026-01-01T00:00:00Z"}});
    store
        .append(vec![unwatched], vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !watched.has_changed().unwrap_or(true),
        "a batch without the type is not announced"
    );
    let receipt = store
        .append(vec![event("a", 1)], vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let committed = receipt.cursor().unwrap_or_default();
    wait_until("the watched commit", || *watched.borrow() == committed).await;
}

/// SQLite's write lock taken in turn (`Store::write_turn`): another writer
/// of this process gets it between two batches of a committer that never
/// idles, and no batch commits while it holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waiting_for_the_turn_gets_it_between_two_batches_of_a_busy_committer() {
    let (_dir, store) = open(Backend::Sqlite).await;
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
    wait_until("the first batches", || committed() >= 20).await;
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
        wait_until("the committer's next batch", || {
            committed() > released_at + waited
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for appender in appenders {
        appender.await.unwrap_or_else(|e| panic!("{e}"));
    }
}
