//! The embedded store's memory of clients and token lookups (ADR 0010):
//! never answered once anything it holds may have changed, whoever wrote.

use writ_domain::client::Client;
use writ_domain::grant::{Grant, GrantCommand, TokenRequest};
use writ_domain::values::{ScopeSet, SecretHash};
use writ_store::executor::Stream;
use writ_store::memory::Memory;
use writ_store::statement::Statement;
use writ_store::views::{clients, tokens};
use writ_store::{Conn, Executor, Metadata, Store};
use writ_testing::service_client_registration;

struct Embedded {
    _dir: tempfile::TempDir,
    store: Store,
    executor: Executor,
}

async fn open() -> Embedded {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open_sqlite(dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let executor = Executor::new(store.clone(), writ_store::services::system());
    Embedded {
        _dir: dir,
        store,
        executor,
    }
}

fn memory(store: &Store) -> &Memory {
    store
        .memory()
        .unwrap_or_else(|| panic!("the embedded store holds a memory"))
}

async fn register(executor: &Executor, client_id: &str) {
    executor
        .execute::<Client>(
            client_id,
            service_client_registration(client_id),
            &Metadata::cli("test"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A client-credentials grant whose opaque access token is keyed `hash`.
async fn grant(executor: &Executor, gid: &str, hash: &str) {
    let command = GrantCommand::GrantClientCredentials {
        gid: gid.into(),
        client_id: "svc".into(),
        scopes: ScopeSet::parse("api").unwrap_or_default(),
        audience: vec![],
        tokens: TokenRequest {
            access_ttl_secs: 300,
            opaque_access_hash: Some(SecretHash(hash.into())),
            refresh: None,
            audience: None,
            dpop_jkt: None,
            status: None,
        },
    };
    executor
        .execute_with::<Grant>(gid, command, &Metadata::cli("test"), vec![], Stream::New)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn revoke(executor: &Executor, gid: &str) {
    let command = GrantCommand::Revoke {
        by: "test".into(),
        reason: "test".into(),
    };
    executor
        .execute::<Grant>(gid, command, &Metadata::cli("test"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Reads the client and both tokens through the database into memory.
async fn remember(store: &Store, hashes: &[&str]) {
    let memory = memory(store);
    let fresh = memory.check().unwrap_or_else(|| panic!("the check runs"));
    let client = clients::find(store.db(), "svc")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("svc is registered"));
    memory.keep_client(fresh, &std::sync::Arc::new(client.into()));
    for hash in hashes {
        let lookup = tokens::lookup(store.db(), hash)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{hash} was issued"));
        memory.keep_token(fresh, hash, &lookup);
    }
}

/// What memory answers now, after a check: the client, then each token.
fn held(store: &Store, hashes: &[&str]) -> (bool, Vec<bool>) {
    let memory = memory(store);
    let fresh = memory.check().unwrap_or_else(|| panic!("the check runs"));
    (
        memory.client(fresh, "svc").is_some(),
        hashes
            .iter()
            .map(|hash| memory.token(fresh, hash).is_some())
            .collect(),
    )
}

async fn with_two_grants() -> Embedded {
    let embedded = open().await;
    register(&embedded.executor, "svc").await;
    grant(&embedded.executor, "g1", "h1").await;
    grant(&embedded.executor, "g2", "h2").await;
    remember(&embedded.store, &["h1", "h2"]).await;
    assert_eq!(
        held(&embedded.store, &["h1", "h2"]),
        (true, vec![true, true])
    );
    embedded
}

#[tokio::test]
async fn a_grant_event_of_this_process_forgets_that_grant_only() {
    let Embedded {
        _dir,
        store,
        executor,
    } = with_two_grants().await;
    revoke(&executor, "g1").await;
    assert_eq!(held(&store, &["h1", "h2"]), (true, vec![false, true]));
    let revoked = tokens::lookup(store.db(), "h1")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("h1 is still a row"));
    assert_eq!(revoked.grant_status.as_str(), "revoked");
}

#[tokio::test]
async fn a_client_event_of_this_process_forgets_everything() {
    let Embedded {
        _dir,
        store,
        executor,
    } = with_two_grants().await;
    register(&executor, "other").await;
    assert_eq!(held(&store, &["h1", "h2"]), (false, vec![false, false]));
}

#[tokio::test]
async fn any_event_of_another_process_forgets_everything() {
    let Embedded { _dir, store, .. } = with_two_grants().await;
    let dir = store
        .database_path()
        .and_then(|path| path.parent())
        .unwrap_or_else(|| panic!("embedded"));
    let other = Store::open_sqlite(dir)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other_executor = Executor::new(other.clone(), writ_store::services::system());
    // A new grant of the same client changes nothing held here, but this
    // process cannot know that without reading it.
    grant(&other_executor, "g3", "h3").await;
    assert_eq!(held(&store, &["h1", "h2"]), (false, vec![false, false]));
}

#[tokio::test]
async fn a_write_outside_the_log_keeps_the_memory() {
    let Embedded { _dir, store, .. } = with_two_grants().await;
    let mut conn = Conn::connect(store.target())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    conn.execute(&[
        Statement::new("CREATE TABLE scratch (n INTEGER)"),
        Statement::new("INSERT INTO scratch VALUES (1)"),
    ])
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(held(&store, &["h1", "h2"]), (true, vec![true, true]));
}

#[tokio::test]
async fn a_row_read_before_a_commit_is_not_kept() {
    let embedded = open().await;
    register(&embedded.executor, "svc").await;
    grant(&embedded.executor, "g1", "h1").await;
    let memory = memory(&embedded.store);
    let fresh = memory.check().unwrap_or_else(|| panic!("check"));
    let lookup = tokens::lookup(embedded.store.db(), "h1")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("h1"));
    revoke(&embedded.executor, "g1").await;
    memory.keep_token(fresh, "h1", &lookup);
    assert_eq!(held(&embedded.store, &["h1"]).1, vec![false]);
}
