//! Writ's adapters: keys and crypto, the event log with its committer and
//! inline read rows, the executor, signing, Kafka, token lookup.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod claims;
pub mod crypto;
pub mod executor;
pub mod kafka;
pub mod keys;
pub mod metrics;
pub mod personal;
pub mod revocations;
pub mod services;
pub mod signing;
pub mod store;
pub mod tokens;

pub use executor::{Committed, ExecuteError, Executor, Metadata};
pub use store::{Cursor, Store};
