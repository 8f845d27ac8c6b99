//! The projector step, poison events, and rebuild equality, on SQLite and
//! PostgreSQL.

use std::time::Duration;

use writ_domain::client::{Client, ClientCommand};
use writ_domain::consent::{Consent, ConsentCommand};
use writ_domain::values::ScopeSet;
use writ_projector::{rebuild_and_compare, Outcome, Projector, ProjectorError};
use writ_store::statement::Statement;
use writ_store::{Conn, Dialect, RowExt};
use writ_store::{Executor, Metadata, Store};
use writ_testing::{open_store, service_client_registration, Backend};

writ_testing::on_both_backends!(
    the_projector_indexes_every_event_once_then_idles,
    an_unknown_event_stops_the_projection_without_moving_the_checkpoint,
    a_rebuild_equals_the_live_tables_and_notices_a_tampered_row,
    values_that_look_like_sql_replay_as_themselves,
);

async fn open(backend: Backend) -> (tempfile::TempDir, Store, Executor) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(backend, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let executor = Executor::new(store.clone(), writ_store::services::system());
    (dir, store, executor)
}

/// Projects until `expected` events are in; on PostgreSQL the global-order
/// bound may hold the projector back while other tests' transactions run.
async fn project_all(projector: &mut Projector, expected: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut total = 0;
    while total < expected && tokio::time::Instant::now() < deadline {
        match projector
            .project_next()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        {
            Outcome::Projected { events, .. } => total += events,
            Outcome::Idle => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    total
}

async fn workload(executor: &Executor) {
    let meta = Metadata::cli("test");
    let register = service_client_registration("c1");
    executor
        .execute::<Client>("c1", register, &meta)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let grant = ConsentCommand::Grant {
        sub: "s1".into(),
        client_id: "c1".into(),
        scopes: ScopeSet::parse("api").unwrap_or_default(),
        request_id: "r1".into(),
    };
    executor
        .execute::<Consent>("s1/c1", grant, &meta)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let withdraw = ConsentCommand::Withdraw {
        by: "s1".into(),
        reason: "test".into(),
    };
    executor
        .execute::<Consent>("s1/c1", withdraw, &meta)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    executor
        .execute::<Client>(
            "c1",
            ClientCommand::Disable {
                reason: "test".into(),
            },
            &meta,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn rows(store: &Store, sql: &str) -> Vec<writ_store::Row> {
    store
        .db()
        .fetch_all(&Statement::new(sql))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn tamper(store: &Store, sqlite: &str, postgres: &str) {
    let mut conn = Conn::connect(store.target())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sql = if conn.dialect() == Dialect::Sqlite {
        sqlite
    } else {
        postgres
    };
    conn.batch(sql).await.unwrap_or_else(|e| panic!("{e}"));
}

async fn the_projector_indexes_every_event_once_then_idles(backend: Backend) {
    let (_dir, store, executor) = open(backend).await;
    workload(&executor).await;
    let mut projector = Projector::new(store.clone(), Duration::from_millis(50))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(project_all(&mut projector, 4).await, 4);
    assert_eq!(projector.project_next().await.ok(), Some(Outcome::Idle));
    let indexed = rows(
        &store,
        "SELECT event_type, client_id, subject FROM audit_index ORDER BY position",
    )
    .await;
    let facts = |i: usize| {
        (
            indexed[i].text("event_type"),
            indexed[i].text("client_id"),
            indexed[i].text("subject"),
        )
    };
    assert_eq!(
        facts(0),
        (Some("ClientRegistered".into()), Some("c1".into()), None)
    );
    assert_eq!(
        facts(2),
        (
            Some("ConsentWithdrawn".into()),
            Some("c1".into()),
            Some("s1".into())
        )
    );
    assert_eq!(
        projector.checkpoint().await.ok().map(|c| c.position),
        Some(4)
    );
}

async fn an_unknown_event_stops_the_projection_without_moving_the_checkpoint(backend: Backend) {
    let (_dir, store, executor) = open(backend).await;
    workload(&executor).await;
    tamper(
        &store,
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, position, recorded_at, hash)
         VALUES ('Client', 'c9', 1, 'ClientTeleported', '9.0', '{}', '{}', 5, '2026-01-01T00:00:00Z', 'x')",
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, hash)
         VALUES ('Client', 'c9', 1, 'ClientTeleported', '9.0', '{}', '{}', 'x')",
    )
    .await;
    let mut projector = Projector::new(store.clone(), Duration::from_millis(50))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let outcome = loop {
        match projector.project_next().await {
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            other => break other,
        }
    };
    assert!(
        matches!(&outcome, Err(ProjectorError::Poison(why)) if why.contains("ClientTeleported")),
        "{outcome:?}"
    );
    assert!(
        matches!(
            projector.project_next().await,
            Err(ProjectorError::Poison(_))
        ),
        "it stays stopped"
    );
    // Everything before the poison is indexed and the checkpoint stops
    // right before it; nothing at or after it is indexed.
    assert_eq!(
        projector.checkpoint().await.ok().map(|c| c.position),
        Some(4)
    );
    assert_eq!(
        rows(&store, "SELECT position FROM audit_index").await.len(),
        4
    );
    assert!(rows(
        &store,
        "SELECT position FROM audit_index WHERE position >= 5"
    )
    .await
    .is_empty());
}

async fn a_rebuild_equals_the_live_tables_and_notices_a_tampered_row(backend: Backend) {
    let (_dir, store, executor) = open(backend).await;
    workload(&executor).await;
    let mut projector = Projector::new(store.clone(), Duration::from_millis(50))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(project_all(&mut projector, 4).await, 4);
    let differences = rebuild_and_compare(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(differences.is_empty(), "{differences:?}");

    tamper(
        &store,
        "UPDATE consents SET status = 'active'",
        "UPDATE consents SET status = 'active'",
    )
    .await;
    let differences = rebuild_and_compare(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(differences.len(), 1);
    assert_eq!(differences[0].table, "consents");
}

/// The replay binds every value (on PostgreSQL through one `EXECUTE …
/// USING` per statement): a name holding quotes, backslashes, a
/// placeholder and a statement separator is stored and rebuilt as itself.
async fn values_that_look_like_sql_replay_as_themselves(backend: Backend) {
    let (_dir, store, executor) = open(backend).await;
    let hostile = "it's \\'; DROP TABLE clients; -- $1 E'\\x' $$ $body$";
    let mut register = service_client_registration("c1");
    if let ClientCommand::Register { settings, .. } = &mut register {
        settings.name = hostile.to_owned();
    }
    executor
        .execute::<Client>("c1", register, &Metadata::cli("test"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let differences = rebuild_and_compare(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(differences.is_empty(), "{differences:?}");
    let names = rows(&store, "SELECT name FROM clients").await;
    assert_eq!(names.len(), 1);
    assert_eq!(names[0].text("name").as_deref(), Some(hostile));
}
