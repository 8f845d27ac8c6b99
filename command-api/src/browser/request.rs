//! The authorization request's client, and how long a sealed one lives;
//! the request itself is read and checked in [`writ_wire::authorization`].

use writ_store::views::clients;

pub use writ_wire::authorization::*;

use crate::CommandState;

/// Whether a sealed request is still within `authorization_request_ttl`.
pub fn fresh(state: &CommandState, pending: &Pending) -> bool {
    let age = (state.executor.services().now() - pending.requested_at)
        .to_std()
        .unwrap_or_default();
    age < state.browser.request_ttl
}

/// The client, if it is registered and active.
pub async fn load_client(state: &CommandState, client_id: &str) -> Result<Option<KnownClient>, ()> {
    Ok(clients::active_settings(state.store.db(), client_id)
        .await
        .map_err(|_| ())?
        .map(|settings| KnownClient {
            client_id: client_id.to_owned(),
            settings,
            allowed_resources: state.allowed_resources.clone(),
        }))
}
