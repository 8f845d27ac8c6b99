//! HTTP pieces the command and query APIs share: strict forms, RFC 6749
//! errors, client authentication and its throttle.

pub mod client_auth;
pub mod error;
pub mod form;
pub mod throttle;

pub use client_auth::{authenticate, AuthenticatedClient};
pub use error::{no_store, OAuthError};
pub use form::Form;
pub use throttle::Throttle;
