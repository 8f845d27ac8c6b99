//! Writ's domain: aggregates, commands, events and the policies that live
//! inside one aggregate. Pure: no IO, no runtime of its own. Time and
//! randomness arrive through [`Services`] so tests fix them.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod account;
pub mod catalog;
pub mod client;
pub mod consent;
pub mod grant;
pub mod liveness;
pub mod login;
pub mod services;
pub mod session;
pub mod signing_key;
pub mod values;

pub use services::{Clock, Randomness, Services};

/// Every event of every aggregate starts at this version; a change to an
/// event's shape bumps it and adds an upcaster in infra.
pub const EVENT_VERSION_1: &str = "1.0";
