//! What every command records about the request that caused it.

pub use writ_edge::request_id;
use writ_edge::AuthenticatedClient;
use writ_store::Metadata;

/// A person's command: the actor is `user:<sub>`.
pub fn user_metadata(sub: &str, request_id: &str, client_id: Option<&str>) -> Metadata {
    Metadata {
        actor: format!("user:{sub}"),
        request_id: request_id.to_owned(),
        client_id: client_id.map(str::to_owned),
        client_auth: None,
    }
}

/// An authenticated client's command: the actor is `client:<id>`, and the
/// method it authenticated with is recorded beside it.
pub fn client_metadata(client: &AuthenticatedClient, request_id: String) -> Metadata {
    Metadata::client(&client.client_id, &request_id, Some(client.method.as_str()))
}
