//! For APIs that accept Writ access tokens.
//!
//! - JWTs are verified locally against Writ's JWKS (fetched, cached,
//!   fetched again when a token names an unknown `kid`), with `iss`, `aud`,
//!   `exp`, `nbf`, `iat` (required; neither may lie beyond the clock-skew
//!   allowance in the future) and `typ` (`at+jwt` or `application/at+jwt`,
//!   RFC 9068 §4) checked; opaque tokens are introspected when
//!   introspection is configured.
//! - A [`DenyList`] fed by Writ's revocation stream ([`feed::follow_kafka`],
//!   or the server-sent-event feed, [`sse::follow_sse`]) rejects revoked tokens the moment the message arrives, without asking
//!   Writ.
//! - [`Authenticated`] is an axum extractor that answers with RFC 6750
//!   `WWW-Authenticate` errors; [`Authenticated::require_scope`] enforces a
//!   scope.
//!
//! Client credentials go to Writ (introspection, the event feed) as HTTP
//! Basic, each form-encoded first (RFC 6749 §2.3.1), so any secret works.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod basic;
pub mod denylist;
mod extractor;
pub mod feed;
pub mod sse;
mod verify;

pub use denylist::{DenyList, TokenFacts};
pub use extractor::{Authenticated, Rejection};
pub use verify::{Config, Introspection, Principal, ResourceServer};
