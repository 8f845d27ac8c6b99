//! The HTTP edge the command and query APIs share: strict forms, RFC 6749
//! errors, client authentication, the client's address, the throttles,
//! body limits and the health endpoints.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod address;
pub mod body;
pub mod client_auth;
mod client_request;
pub mod error;
pub mod form;
pub mod health;
pub mod throttle;

pub use address::{ClientAddress, TrustedProxies};
pub use client_auth::{authenticate, AuthenticatedClient};
pub use client_request::{
    request_id, ClientAuthenticator, ClientRequest, ConfidentialClientRequest,
};
pub use error::{no_store, ErrorCode, OAuthError};
pub use form::Form;
pub use throttle::Throttle;

use axum::http::{header, HeaderMap};

/// Whether the request carries `expected` as its bearer token (RFC 6750
/// §2.1), compared in constant time; an empty token never matches.
pub fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    !presented.is_empty()
        && writ_infra::crypto::constant_time_eq(
            writ_infra::crypto::sha256_hex(presented.as_bytes()).as_bytes(),
            writ_infra::crypto::sha256_hex(expected.as_bytes()).as_bytes(),
        )
}
