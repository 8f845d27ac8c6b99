//! One authorization: a code flow, a client-credentials issuance, a password
//! grant, and the refresh-token family that follows. Replayed codes and
//! reused refresh tokens are recorded outcomes that revoke the grant; they
//! are `Ok` with events, which the API answers with `invalid_grant`.

mod aggregate;
mod command;
mod device;
mod error;
mod event;
mod exchange;
mod mint;
mod refresh;
mod revoke;

pub use aggregate::{Grant, GrantStatus};
pub use command::{GrantCommand, GrantKind, RefreshRequest, TokenRef, TokenRequest};
pub use error::GrantError;
pub use event::{GrantEvent, GrantParties, REVOCATIONS_VERSION};
pub use exchange::{Actor, Lineage, MAX_DEPTH as MAX_EXCHANGE_DEPTH};

#[cfg(test)]
mod tests;
