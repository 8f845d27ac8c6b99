//! What every command records about the request that caused it.

use axum::http::HeaderMap;
use writ_infra::Metadata;

/// The request id the edge's `x-request-id` layer set, for the event's
/// metadata and the logs.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A person's command: the actor is `user:<sub>`.
pub fn user_metadata(sub: &str, request_id: &str, client_id: Option<&str>) -> Metadata {
    Metadata {
        actor: format!("user:{sub}"),
        request_id: request_id.to_owned(),
        client_id: client_id.map(str::to_owned),
    }
}
