//! Why a request is refused, as RFC 6750 §3 words it; the `axum` feature
//! turns it into a response.

use reqwest::StatusCode;

/// Why a request is refused (RFC 6750 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub(crate) status: StatusCode,
    /// `None` when no token was presented: the challenge carries no error.
    pub(crate) error: Option<&'static str>,
    pub(crate) description: String,
    scope: Option<String>,
}

impl Rejection {
    pub fn missing() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: None,
            description: String::new(),
            scope: None,
        }
    }

    pub fn invalid_request(description: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: Some("invalid_request"),
            description: description.to_owned(),
            scope: None,
        }
    }

    pub fn invalid_token(description: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: Some("invalid_token"),
            description: description.to_owned(),
            scope: None,
        }
    }

    pub fn insufficient_scope(scope: &str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            error: Some("insufficient_scope"),
            description: format!("the {scope} scope is required"),
            scope: Some(scope.to_owned()),
        }
    }

    /// Introspection failed: the token's state is unknown, not bad.
    pub fn unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: None,
            description: "the authorization server cannot be reached".to_owned(),
            scope: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn error(&self) -> Option<&'static str> {
        self.error
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3), for servers not on axum.
    pub fn challenge(&self) -> String {
        let mut challenge = String::from("Bearer realm=\"api\"");
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
