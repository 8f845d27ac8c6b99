//! What Writ and the APIs that accept its tokens agree on, and nothing
//! else: the access token's claims, how its signature is checked against
//! Writ's JWKS, the revocation message of the stream and feed, and the
//! token status list. It has
//! no IO and no store, so `writ-resource-server`, which every such API
//! builds, depends on this crate alone.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod claims;
pub mod dpop;
pub mod jose;
pub mod revocation;
pub mod signals;
pub mod status_list;

pub use claims::{AccessTokenClaims, Audience, Confirmation};
