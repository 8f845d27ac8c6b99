//! Why a request is refused, as RFC 6750 §3 words it (RFC 9449 §7.1 for
//! DPoP-bound tokens); the `axum` feature turns it into a response.

use reqwest::StatusCode;

/// Why a request is refused (RFC 6750 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub(crate) status: StatusCode,
    /// `None` when no token was presented: the challenge carries no error.
    pub(crate) error: Option<&'static str>,
    pub(crate) description: String,
    scope: Option<String>,
    /// The challenge is `DPoP` (RFC 9449 §7.1), not `Bearer`.
    dpop: bool,
}

impl Rejection {
    pub fn missing() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: None,
            description: String::new(),
            scope: None,
            dpop: false,
        }
    }

    pub fn invalid_request(description: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: Some("invalid_request"),
            description: description.to_owned(),
            scope: None,
            dpop: false,
        }
    }

    pub fn invalid_token(description: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: Some("invalid_token"),
            description: description.to_owned(),
            scope: None,
            dpop: false,
        }
    }

    pub fn insufficient_scope(scope: &str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            error: Some("insufficient_scope"),
            description: format!("the {scope} scope is required"),
            scope: Some(scope.to_owned()),
            dpop: false,
        }
    }

    /// Introspection failed: the token's state is unknown, not bad.
    pub fn unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: None,
            description: "the authorization server cannot be reached".to_owned(),
            scope: None,
            dpop: false,
        }
    }

    /// A DPoP-bound token's refusal (RFC 9449 §7.1): `invalid_token` or
    /// `invalid_dpop_proof`, 401 with a `DPoP` challenge.
    pub fn dpop(error: &'static str, description: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: Some(error),
            description: description.to_owned(),
            scope: None,
            dpop: true,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn error(&self) -> Option<&'static str> {
        self.error
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3, RFC 9449 §7.1), for
    /// servers not on axum.
    pub fn challenge(&self) -> String {
        let mut challenge = if self.dpop {
            format!(
                "DPoP realm=\"api\", algs=\"{}\"",
                writ_protocol::dpop::ALGORITHMS.join(" ")
            )
        } else {
            String::from("Bearer realm=\"api\"")
        };
        if let Some(error) = self.error {
            // Descriptions are ours and plain; quotes would break the header.
            let description = self.description.replace(['"', '\\'], "'");
            challenge.push_str(&format!(
                ", error=\"{error}\", error_description=\"{description}\""
            ));
        }
        if let Some(scope) = &self.scope {
            challenge.push_str(&format!(", scope=\"{scope}\""));
        }
        challenge
    }
}
