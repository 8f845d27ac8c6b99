//! Every JSON error Writ answers with (RFC 6749 §5.2, RFC 6750 §3.1, RFC
//! 7591 §3.2.2): the code from the RFC's list, a description without
//! internal detail, `no-store`; the cause, when there is one, is logged
//! once in the request's span and never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The codes the RFCs define, and only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ErrorCode {
    /// RFC 6749 §5.2 and §4.1.2.1.
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    AccessDenied,
    TemporarilyUnavailable,
    /// RFC 6750 §3.1.
    InvalidToken,
    InsufficientScope,
    /// RFC 7591 §3.2.2.
    InvalidRedirectUri,
    InvalidClientMetadata,
    /// RFC 8707 §2.
    InvalidTarget,
    /// RFC 6749 §4.1.2.1, answered by the pushed authorization request
    /// endpoint (RFC 9126 §2.3) where `/authorize` would redirect.
    UnsupportedResponseType,
    /// RFC 9101 §6.3.
    InvalidRequestObject,
    /// RFC 9449 §5 and §7.1.
    InvalidDpopProof,
    /// RFC 9449 §8 and §9: retry with the `DPoP-Nonce` sent.
    UseDpopNonce,
    /// RFC 8628 §3.5: the device polls again later.
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
}

impl ErrorCode {
    const ALL: [Self; 20] = [
        Self::InvalidRequest,
        Self::InvalidClient,
        Self::InvalidGrant,
        Self::UnauthorizedClient,
        Self::UnsupportedGrantType,
        Self::InvalidScope,
        Self::AccessDenied,
        Self::TemporarilyUnavailable,
        Self::InvalidToken,
        Self::InsufficientScope,
        Self::InvalidRedirectUri,
        Self::InvalidClientMetadata,
        Self::InvalidTarget,
        Self::UnsupportedResponseType,
        Self::InvalidRequestObject,
        Self::InvalidDpopProof,
        Self::UseDpopNonce,
        Self::AuthorizationPending,
        Self::SlowDown,
        Self::ExpiredToken,
    ];

    /// The code an authorization error names, for an endpoint that answers
    /// in JSON what `/authorize` sends back in a redirect.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|known| known.as_str() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidTarget => "invalid_target",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidRequestObject => "invalid_request_object",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
        }
    }
}

/// A request `writ_wire` refused for what it says: a 400, or for
/// malformed client credentials a 401 with the Basic challenge.
impl From<writ_wire::Invalid> for OAuthError {
    fn from(invalid: writ_wire::Invalid) -> Self {
        match ErrorCode::parse(invalid.error) {
            Some(ErrorCode::InvalidClient) => Self::invalid_client(invalid.description, "Basic"),
            Some(code) => Self::new(StatusCode::BAD_REQUEST, code, invalid.description),
            None => Self::invalid_request(invalid.description),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: ErrorCode,
    pub description: String,
    pub www_authenticate: Option<String>,
    pub retry_after_secs: Option<u64>,
    /// RFC 9449 §8: the nonce the client's next DPoP proof must carry.
    pub dpop_nonce: Option<String>,
    /// What went wrong inside, for the log only.
    pub cause: Option<String>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            www_authenticate: None,
            retry_after_secs: None,
            dpop_nonce: None,
            cause: None,
        }
    }

    /// Keeps `cause` for the log; the client still sees only the description.
    pub fn because(self, cause: impl std::fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..self
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            description,
        )
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidGrant,
            description,
        )
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidScope,
            description,
        )
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnauthorizedClient,
            description,
        )
    }

    /// RFC 6749 §5.2: 401 with a challenge naming the scheme to use.
    pub fn invalid_client(description: impl Into<String>, scheme: &str) -> Self {
        Self {
            www_authenticate: Some(format!("{scheme} realm=\"writ\"")),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidClient,
                description,
            )
        }
    }

    /// RFC 6750 §3: a protected resource's refusal, its error in the
    /// challenge as well as in the body.
    pub fn bearer(status: StatusCode, error: ErrorCode, description: impl Into<String>) -> Self {
        Self::bearer_in(crate::bearer::REALM, status, error, description)
    }

    pub fn bearer_in(
        realm: &str,
        status: StatusCode,
        error: ErrorCode,
        description: impl Into<String>,
    ) -> Self {
        Self {
            www_authenticate: Some(format!(
                "Bearer realm=\"{realm}\", error=\"{}\"",
                error.as_str()
            )),
            ..Self::new(status, error, description)
        }
    }

    /// Too many failed attempts under one key (R73). RFC 6749 has no code
    /// for it; `slow_down` belongs to RFC 8628's device flow, so this is
    /// 429 `invalid_request` with `Retry-After`.
    pub fn throttled(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InvalidRequest,
            "too many failed attempts; retry later",
        )
        .retry_after(retry_after_secs)
    }

    pub fn retry_after(self, secs: u64) -> Self {
        Self {
            retry_after_secs: Some(secs.max(1)),
            ..self
        }
    }

    /// The store could not be reached or did not confirm the commit.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TemporarilyUnavailable,
            "the server cannot complete the request now; nothing was issued",
        )
    }
}

/// RFC 6749 §5.2 allows only %x20-21 / %x23-5B / %x5D-7E in descriptions.
fn printable(description: &str) -> String {
    description
        .chars()
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => ' ',
        })
        .collect()
}

pub fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            if self.status.is_server_error() {
                tracing::warn!(error = self.error.as_str(), %cause, "request failed");
            } else {
                tracing::info!(error = self.error.as_str(), %cause, "request refused");
            }
        }
        let body = json!({
            "error": self.error.as_str(),
            "error_description": printable(&self.description),
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        no_store(&mut response);
        let headers = response.headers_mut();
        if let Some(challenge) = self
            .www_authenticate
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(nonce) = self.dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            headers.insert(crate::dpop::NONCE_HEADER, nonce);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_from_its_name_and_nothing_else_does() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(
            ErrorCode::parse("unsupported_response_type"),
            Some(ErrorCode::UnsupportedResponseType)
        );
        assert_eq!(ErrorCode::parse("login_required"), None);
    }

    #[test]
    fn descriptions_lose_control_characters_and_quotes() {
        assert_eq!(printable("a\r\nb\t\"c\\"), "a  b  c ");
    }

    #[tokio::test]
    async fn the_cause_is_logged_and_never_sent() {
        let response = OAuthError::unavailable()
            .because("pool timed out connecting to db.internal:5432")
            .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let body: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(!body.to_string().contains("db.internal"), "{body}");
    }

    #[test]
    fn every_code_is_spelled_as_its_rfc_spells_it() {
        for (code, text) in [
            (ErrorCode::InvalidRequest, "invalid_request"),
            (ErrorCode::UnsupportedGrantType, "unsupported_grant_type"),
            (ErrorCode::InvalidClientMetadata, "invalid_client_metadata"),
            (ErrorCode::InvalidTarget, "invalid_target"),
            (ErrorCode::TemporarilyUnavailable, "temporarily_unavailable"),
        ] {
            assert_eq!(code.as_str(), text);
        }
    }
}
