//! Writ's adapters around the store: the key file and crypto, signing keys
//! and JWTs, token lookup, the revocation publisher and Kafka.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod claims;
pub mod client_keys;
pub mod crypto;
pub mod kafka;
pub mod keys;
pub mod outbound;
pub mod personal;
pub mod revocations;
pub mod signing;
pub mod ssf;
pub mod status_lists;
pub mod tokens;
