//! For APIs that accept Writ access tokens.
//!
//! - JWTs are verified locally against Writ's JWKS (fetched, cached,
//!   fetched again when a token names an unknown `kid`), with `iss`, `aud`,
//!   `exp`, `nbf`, `iat` (required; neither may lie beyond the clock-skew
//!   allowance in the future) and `typ` (`at+jwt` or `application/at+jwt`,
//!   RFC 9068 §4) checked; opaque tokens are introspected when
//!   introspection is configured.
//! - A [`DenyList`] fed by Writ's revocation stream ([`feed::follow_kafka`],
//!   or the server-sent-event feed, [`sse::follow_sse`]) or by Shared
//!   Signals ([`ssf::push_router`], [`ssf::follow_poll`]) rejects revoked
//!   tokens the moment the message arrives, without asking Writ.
//! - With [`Config::status_lists`], each JWT's bit in Writ's token status
//!   list decides too: the list is fetched once per `ttl` and read offline.
//!   Every source ends in the same refusal (README.md compares them).
//! - [`Authenticated`] is an axum extractor that answers with RFC 6750
//!   `WWW-Authenticate` errors; [`Authenticated::require_scope`] enforces a
//!   scope.
//! - DPoP-bound tokens (RFC 9449, `cnf.jkt`) are accepted only under the
//!   `DPoP` scheme with a fresh proof by their key for the request, `ath`
//!   included ([`ResourceServer::authenticate_dpop`]; the extractor does it
//!   for you, reading the full path of nested routes); each proof's `jti`
//!   is accepted once per process, in a set bounded in all and per key
//!   ([`Config::dpop_replay_capacity`], [`Config::dpop_replay_per_key`]). Refusals
//!   carry a `DPoP` challenge (§7.1). Set [`Config::public_url`] unless the
//!   audience is the API's URL: proofs name it in `htu`.
//!
//! It depends on `writ-protocol` alone of Writ's crates: no store, no
//! signing keys. The Kafka consumer (`kafka`) and the axum extractor
//! (`axum`) are cargo features, both on by default; an API that only reads
//! the server-sent-event feed builds with `default-features = false`.
//!
//! Client credentials go to Writ (introspection, the event feed) as HTTP
//! Basic, each form-encoded first (RFC 6749 §2.3.1), so any secret works.
//!
//! # Introspecting tokens for an RFC 8707 resource
//!
//! Tokens requested with `resource=https://api.example/` carry that URI in
//! `aud`. Client ids cannot be URIs, so the API introspects them with a
//! confidential client that answers for the resource:
//!
//! ```text
//! writ client create --name "example API" --resource https://api.example/
//! ```
//!
//! (or RFC 7591 registration with `"resources": ["https://api.example/"]`),
//! and is configured with that client:
//!
//! ```no_run
//! use writ_resource_server::{Config, Introspection, ResourceServer};
//!
//! let mut config = Config::new("https://writ.example", "https://api.example/");
//! config.introspection = Some(Introspection {
//!     url: "https://writ.example/introspect".into(),
//!     client_id: "the client id".into(),
//!     client_secret: "its secret".into(),
//! });
//! let server = ResourceServer::new(config);
//! ```
//!
//! Writ shows that client every access token whose `aud` names one of its
//! `resources`, and only those besides its own.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod basic;
pub mod denylist;
mod dpop;
#[cfg(feature = "axum")]
mod extractor;
#[cfg(feature = "kafka")]
pub mod feed;
mod rejection;
mod replay;
pub mod sse;
pub mod ssf;
mod status;
mod verify;

pub use denylist::{DenyList, TokenFacts};
pub use dpop::DpopRequest;
#[cfg(feature = "axum")]
pub use extractor::Authenticated;
pub use rejection::Rejection;
pub use verify::{Config, Introspection, Principal, ResourceServer};
pub use writ_protocol::revocation::Revocation;
