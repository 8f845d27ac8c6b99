//! RFC 6749 §5.2 error responses: JSON, `no-store`, a code from the RFC's
//! list, and a description without internal detail.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    pub www_authenticate: Option<String>,
    pub retry_after_secs: Option<u64>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            www_authenticate: None,
            retry_after_secs: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    /// RFC 6749 §5.2: 401 with a challenge naming the scheme to use.
    pub fn invalid_client(description: impl Into<String>, scheme: &str) -> Self {
        Self {
            www_authenticate: Some(format!("{scheme} realm=\"writ\"")),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
        }
    }

    /// Too many failed attempts under one key (R73). RFC 6749 has no code
    /// for it; `slow_down` belongs to RFC 8628's device flow, so this is
    /// 429 `invalid_request` with `Retry-After`.
    pub fn throttled(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request",
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
            "temporarily_unavailable",
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
        let body = json!({
            "error": self.error,
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
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_lose_control_characters_and_quotes() {
        assert_eq!(printable("a\r\nb\t\"c\\"), "a  b  c ");
    }
}
