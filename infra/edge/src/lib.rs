//! The HTTP edge the command and query APIs share: strict forms, RFC 6749
//! errors, client authentication, bearer tokens, the client's address, the throttles,
//! body limits, the health endpoints and `/metrics`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod address;
pub mod admission;
pub mod bearer;
pub mod body;
pub mod client_assertion;
pub mod client_auth;
mod client_request;
pub mod dpop;
pub mod error;
pub mod fapi2;
pub mod form;
pub mod health;
pub mod metrics;
pub mod openapi;
mod query;
pub mod throttle;

pub use address::{ClientAddress, TrustedProxies};
pub use bearer::{BearerRejection, BearerToken};
pub use client_auth::{authenticate, AuthenticatedClient};
pub use client_request::{
    request_id, ClientAuthenticator, ClientRequest, ConfidentialClientRequest,
    HeaderAuthenticatedClient,
};
pub use error::{no_store, ErrorCode, OAuthError};
pub use form::Form;
pub use query::Query;
pub use throttle::Throttle;
