//! Registered clients: their settings, secret hash and status.

use writ_domain::client::ClientSettings;

use super::status;
use super::table;
use crate::memory::Memory;
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

/// [`find`], answered from the store's memory while it is fresh (ADR 0010):
/// client authentication on every token and introspection request.
pub async fn find_current(
    store: &Store,
    client_id: &str,
) -> Result<Option<ClientRow>, sqlx::Error> {
    let memory = store.memory();
    let fresh = memory.and_then(Memory::check);
    if let (Some(memory), Some(fresh)) = (memory, fresh) {
        if let Some(row) = memory.client(fresh, client_id) {
            return Ok(Some(row));
        }
    }
    let row = find(store.db(), client_id).await?;
    if let (Some(memory), Some(fresh), Some(row)) = (memory, fresh, &row) {
        memory.keep_client(fresh, row);
    }
    Ok(row)
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
