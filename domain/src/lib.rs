//! Writ's domain: aggregates, commands, events and the policies that live
//! inside one aggregate. Pure: no IO, no runtime of its own. Time and
//! randomness arrive through [`Services`] so tests fix them.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod account;
pub mod backchannel_logout;
pub mod catalog;
pub mod client;
pub mod client_assertion;
pub mod consent;
pub mod cursor;
pub mod dpop_proof;
pub mod grant;
pub mod liveness;
pub mod login;
pub mod pushed_request;
pub mod services;
pub mod session;
pub mod signing_key;
pub mod ssf_stream;
pub mod status_list;
pub mod values;

pub use services::{Clock, Randomness, Services};

/// Every event of every aggregate starts at this version. A change to an
/// event's shape bumps it, `catalog` lists the versions readers accept, and
/// each older version's stored payload must read as the current type (its
/// upcast; `catalog`'s tests hold one per change). Stored events are never
/// rewritten: their hashes are in the chain.
pub const EVENT_VERSION_1: &str = "1.0";
