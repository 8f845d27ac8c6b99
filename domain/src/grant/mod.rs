//! One authorization: a code flow, a client-credentials issuance, a password
//! grant, and the refresh-token family that follows. Replayed codes and
//! reused refresh tokens are recorded outcomes that revoke the grant; they
//! are `Ok` with events, which the API answers with `invalid_grant`.

mod aggregate;
mod command;
mod device;
mod error;
mod event;
mod mint;
mod refresh;
mod revoke;

pub use aggregate::{Grant, GrantStatus};
pub use command::{GrantCommand, GrantKind, RefreshRequest, TokenRef, TokenRequest};
pub use error::GrantError;
pub use event::{GrantEvent, GrantParties, REVOCATIONS_VERSION};

#[cfg(test)]
mod tests;
