//! A registered OAuth client. Its stream stays short: settings changes,
//! secret rotations and disabling only. Token issuance never appends here.

mod aggregate;
mod command;
mod error;
mod event;
mod keys;

pub use aggregate::{Client, ClientStatus};
pub use command::{ClientCommand, ClientSettings};
pub use error::ClientError;
pub use event::ClientEvent;
pub use keys::{check_jwks, check_jwks_uri, is_reachable_address, is_server_side_uri, AuthMethod};

#[cfg(test)]
mod tests;
