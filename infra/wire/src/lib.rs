//! What a stranger sends Writ, read strictly and without IO: strict form
//! bodies, Basic credentials, client assertions and request objects,
//! cookies, sealed browser state, the authorization request and the
//! Shared Signals management bodies.
//! The APIs read requests through it and the fuzz targets (`fuzz/`)
//! exercise exactly that code, with no database or broker to build.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod audience;
pub mod authorization;
pub mod client_jwt;
pub mod cookie;
pub mod credentials;
pub mod form;
pub mod request_object;
pub mod sealed;
pub mod ssf_stream;

/// A request refused for what it says: the RFC 6749 error code to answer
/// with (`invalid_request`, `invalid_client`, `invalid_scope`,
/// `invalid_target`) and a description the client may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub error: &'static str,
    pub description: String,
}

impl Invalid {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
        }
    }

    pub fn request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    pub fn client(description: impl Into<String>) -> Self {
        Self::new("invalid_client", description)
    }

    pub fn scope(description: impl Into<String>) -> Self {
        Self::new("invalid_scope", description)
    }

    pub fn target(description: impl Into<String>) -> Self {
        Self::new("invalid_target", description)
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}
