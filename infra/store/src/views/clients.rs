//! Registered clients: their settings, secret hash and status.

use std::sync::Arc;

use writ_domain::client::ClientSettings;

use super::status;
use super::table;
use crate::memory::{Fresh, Memory};
use crate::statement::Statement;
use crate::{Db, Store};

table! {
    CLIENTS = "clients", columns client {
        client_id, name, settings, secret_hash, status, registered_at,
        updated_at,
    }
    key [client_id]
    lookups []
}

status!(ClientStatus {
    Active = "active",
    Disabled = "disabled",
});

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRow {
    pub client_id: String,
    pub name: String,
    /// The client's [`ClientSettings`] as JSON.
    pub settings: String,
    /// SHA-256 of the secret; none for a public client.
    pub secret_hash: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ClientStatus,
    pub registered_at: String,
    pub updated_at: String,
}

impl ClientRow {
    /// `None` when the stored JSON is not settings this Writ reads.
    pub fn settings(&self) -> Option<ClientSettings> {
        serde_json::from_str(&self.settings).ok()
    }

    pub fn is_active(&self) -> bool {
        self.status == ClientStatus::Active
    }
}

const COLUMNS: &str = "client_id, name, settings, secret_hash, status, registered_at, updated_at";

pub async fn find(db: &Db, client_id: &str) -> Result<Option<ClientRow>, sqlx::Error> {
    db.fetch_row(
        &Statement::new(format!(
            "SELECT {COLUMNS} FROM clients WHERE client_id = $1"
        ))
        .text(client_id),
    )
    .await
}

/// A client row with its settings read once: what the memory holds, so
/// that authenticating a client does not parse its settings per request.
#[derive(Debug)]
pub struct CurrentClient {
    pub row: ClientRow,
    /// `None` when the stored JSON is not settings this Writ reads.
    pub settings: Option<Arc<ClientSettings>>,
}

impl From<ClientRow> for CurrentClient {
    fn from(row: ClientRow) -> Self {
        let settings = row.settings().map(Arc::new);
        Self { row, settings }
    }
}

/// What [`find_current`] found, and the memory's freshness verdict it was
/// read under when nothing waited since (the row came from memory), which
/// the rest of the same request may reuse.
pub struct Found {
    pub client: Option<Arc<CurrentClient>>,
    pub checked: Option<Fresh>,
}

/// [`find`], answered from the store's memory while it is fresh (ADR 0010):
/// client authentication on every token and introspection request.
pub async fn find_current(store: &Store, client_id: &str) -> Result<Found, sqlx::Error> {
    let memory = store.memory();
    let checked = memory.and_then(Memory::check);
    if let (Some(memory), Some(fresh)) = (memory, checked) {
        if let Some(client) = memory.client(fresh, client_id) {
            return Ok(Found {
                client: Some(client),
                checked,
            });
        }
    }
    let client = find(store.db(), client_id)
        .await?
        .map(|row| Arc::new(CurrentClient::from(row)));
    if let (Some(memory), Some(fresh), Some(client)) = (memory, checked, &client) {
        memory.keep_client(fresh, client);
    }
    // The read waited on the database, and another writer may have
    // committed meanwhile: the request's next read checks again.
    Ok(Found {
        client,
        checked: None,
    })
}

/// The settings of an active client, if this Writ reads them.
pub async fn active_settings(
    db: &Db,
    client_id: &str,
) -> Result<Option<ClientSettings>, sqlx::Error> {
    Ok(find(db, client_id)
        .await?
        .filter(ClientRow::is_active)
        .and_then(|row| row.settings()))
}

/// Every client, oldest registration first.
pub async fn all(db: &Db) -> Result<Vec<ClientRow>, sqlx::Error> {
    db.fetch_rows(&Statement::new(format!(
        "SELECT {COLUMNS} FROM clients ORDER BY registered_at, client_id"
    )))
    .await
}
