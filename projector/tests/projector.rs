//! The projector step, poison events, and rebuild equality on real SQLite.

use sqlx::{Connection, SqliteConnection};
use writ_domain::client::{Client, ClientCommand, ClientSettings};
use writ_domain::consent::{Consent, ConsentCommand};
use writ_domain::values::{ApplicationType, GrantType, ScopeSet, SecretHash, TokenFormat};
use writ_infra::store::connect_options;
use writ_infra::{Executor, Metadata, Store};
use writ_projector::{rebuild_and_compare, Outcome, Projector, ProjectorError};

async fn open() -> (tempfile::TempDir, Store, Executor) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open_sqlite(dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let executor = Executor::new(store.clone(), writ_infra::services::system());
    (dir, store, executor)
}

async fn workload(executor: &Executor) {
    let settings = ClientSettings {
        name: "svc".into(),
        redirect_uris: vec![],
        grant_types: vec![GrantType::ClientCredentials],
        scopes: ScopeSet::parse("api").unwrap_or_default(),
        public: false,
        application_type: ApplicationType::Web,
        token_format: TokenFormat::Opaque,
        access_token_ttl_secs: 60,
        refresh_token_ttl_secs: 60,
        audience: vec![],
    };
    let meta = Metadata::cli("test");
    let register = ClientCommand::Register {
        client_id: "c1".into(),
        settings,
        secret_hash: Some(SecretHash("aa".repeat(32))),
    };
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

async fn project_all(projector: &mut Projector) -> usize {
    let mut total = 0;
    while let Outcome::Projected { events, .. } = projector
        .project_next()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    {
        total += events;
    }
    total
}

#[tokio::test]
async fn the_projector_indexes_every_event_once_then_idles() {
    let (_dir, store, executor) = open().await;
    workload(&executor).await;
    let mut projector = Projector::new(store.clone(), std::time::Duration::from_millis(50))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(project_all(&mut projector).await, 4);
    assert_eq!(projector.project_next().await.ok(), Some(Outcome::Idle));
    let rows: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT event_type, client_id, subject FROM audit_index ORDER BY position")
            .fetch_all(store.readers())
            .await
            .unwrap_or_default();
    assert_eq!(
        rows[0],
        ("ClientRegistered".into(), Some("c1".into()), None)
    );
    assert_eq!(
        rows[2],
        (
            "ConsentWithdrawn".into(),
            Some("c1".into()),
            Some("s1".into())
        )
    );
    assert_eq!(
        projector.checkpoint().await.ok().map(|c| c.position),
        Some(4)
    );
}

#[tokio::test]
async fn an_unknown_event_stops_the_projection_without_moving_the_checkpoint() {
    let (_dir, store, executor) = open().await;
    workload(&executor).await;
    let mut conn = SqliteConnection::connect_with(&connect_options(store.database_path()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, position, recorded_at, hash)
         VALUES ('Client', 'c9', 1, 'ClientTeleported', '9.0', '{}', '{}', 5, '2026-01-01T00:00:00Z', 'x')",
    )
    .execute(&mut conn)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut projector = Projector::new(store.clone(), std::time::Duration::from_millis(50))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = projector.project_next().await;
    assert!(
        matches!(&outcome, Err(ProjectorError::Poison(why)) if why.contains("ClientTeleported")),
        "{outcome:?}"
    );
    assert_eq!(
        projector.checkpoint().await.ok().map(|c| c.position),
        Some(0),
        "the batch rolled back"
    );
    let indexed: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_index")
        .fetch_one(store.readers())
        .await
        .unwrap_or(-1);
    assert_eq!(indexed, 0);
}

#[tokio::test]
async fn a_rebuild_equals_the_live_tables_and_notices_a_tampered_row() {
    let (_dir, store, executor) = open().await;
    workload(&executor).await;
    let mut projector = Projector::new(store.clone(), std::time::Duration::from_millis(50))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    project_all(&mut projector).await;
    let differences = rebuild_and_compare(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(differences.is_empty(), "{differences:?}");

    let mut conn = SqliteConnection::connect_with(&connect_options(store.database_path()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("UPDATE consents SET status = 'active'")
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let differences = rebuild_and_compare(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(differences.len(), 1);
    assert_eq!(differences[0].table, "consents");
}
