//! The bearer token a request presents (RFC 6750 §2): in the
//! `Authorization` header, or as `access_token` in a form body on POST;
//! never in the query (§2.3, R39). Rejections are §3's: a request without
//! any token gets the bare challenge, a malformed one `invalid_request`.

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::{form, ErrorCode, OAuthError};

/// Writ's own realm; the audit API names its own.
pub const REALM: &str = "writ";

/// A presented access token, not yet checked: in the `Authorization`
/// header as `Bearer` or, when it is DPoP-bound, as `DPoP` (RFC 9449
/// §7.1), or as a bearer token in a posted form.
pub struct BearerToken {
    pub token: String,
    /// Presented with the `DPoP` scheme.
    pub dpop: bool,
}

/// Why no token could be read.
#[derive(Debug)]
pub enum BearerRejection {
    /// No token at all: §3.1 says to send no error code, only the challenge.
    Missing,
    Malformed(OAuthError),
}

impl IntoResponse for BearerRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Missing => bare_challenge(REALM),
            Self::Malformed(error) => error.into_response(),
        }
    }
}

/// The answer to a request that must present `expected` as its bearer
/// token, when it does not (`None` when it does): the bare challenge when
/// it presents none (§3.1), else `invalid_token`.
pub fn refusal(
    headers: &HeaderMap,
    expected: &str,
    realm: &str,
    description: &str,
) -> Option<Response> {
    let expected_hash = writ_infra::crypto::sha256_hex(expected.as_bytes());
    refusal_by_hash(headers, Some(&expected_hash), realm, description)
}

/// [`refusal`] for a token Writ keeps only as its SHA-256; `None` is a
/// token that no longer exists, which nothing matches.
pub fn refusal_by_hash(
    headers: &HeaderMap,
    expected_hash: Option<&str>,
    realm: &str,
    description: &str,
) -> Option<Response> {
    if expected_hash.is_some_and(|hash| matches_hash(headers, hash)) {
        return None;
    }
    if from_header(headers).is_none() {
        return Some(bare_challenge(realm));
    }
    let wrong = OAuthError::bearer_in(
        realm,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidToken,
        description,
    );
    Some(wrong.into_response())
}

/// The 401 for a request with no bearer token at all: the challenge and
/// nothing else, no error code (RFC 6750 §3.1).
pub fn bare_challenge(realm: &str) -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(challenge) = HeaderValue::from_str(&format!("Bearer realm=\"{realm}\"")) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    crate::no_store(&mut response);
    response
}

/// The token in the `Authorization` header, if the scheme is Bearer (in
/// any case: RFC 7235 §2.1); possibly empty.
pub fn from_header(headers: &HeaderMap) -> Option<&str> {
    in_scheme(headers, "bearer")
}

/// The credentials in the `Authorization` header under `scheme`
/// (compared in any case), trimmed; possibly empty.
fn in_scheme<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (presented, token) = value.split_once(' ')?;
    presented.eq_ignore_ascii_case(scheme).then(|| token.trim())
}

impl<S: Send + Sync> FromRequest<S> for BearerToken {
    type Rejection = BearerRejection;

    async fn from_request(request: Request, _state: &S) -> Result<Self, BearerRejection> {
        let (parts, body) = request.into_parts();
        let malformed = |description: &str| {
            BearerRejection::Malformed(OAuthError::bearer(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                description,
            ))
        };
        let in_header = from_header(&parts.headers).map(|token| (token.to_owned(), false));
        let in_header = in_header
            .or_else(|| in_scheme(&parts.headers, "dpop").map(|token| (token.to_owned(), true)));
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let in_body = if parts.method == Method::POST && is_form {
            let form = form::read(&parts.headers, body)
                .await
                .map_err(|_| malformed("malformed body"))?;
            form.get("access_token")
                .map(|token| (token.to_owned(), false))
        } else {
            None
        };
        match (in_header, in_body) {
            (Some(_), Some(_)) => Err(malformed("send the token one way, not two")),
            (Some((token, _)), None) | (None, Some((token, _))) if token.is_empty() => {
                Err(malformed("the bearer token is empty"))
            }
            (Some((token, dpop)), None) | (None, Some((token, dpop))) => Ok(Self { token, dpop }),
            (None, None) => Err(BearerRejection::Missing),
        }
    }
}

/// Whether the request carries the token whose SHA-256 is
/// `expected_hash` as its bearer token, compared in constant time; an
/// empty token never matches.
fn matches_hash(headers: &HeaderMap, expected_hash: &str) -> bool {
    let presented = from_header(headers).unwrap_or("");
    !presented.is_empty()
        && writ_infra::crypto::constant_time_eq(
            writ_infra::crypto::sha256_hex(presented.as_bytes()).as_bytes(),
            expected_hash.as_bytes(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn extract(
        request: axum::http::request::Builder,
        body: &str,
    ) -> Result<String, Response> {
        let request = request
            .body(Body::from(body.to_owned()))
            .unwrap_or_else(|e| panic!("{e}"));
        BearerToken::from_request(request, &())
            .await
            .map(|token| token.token)
            .map_err(IntoResponse::into_response)
    }

    fn post() -> axum::http::request::Builder {
        Request::builder()
            .method(Method::POST)
            .uri("/userinfo?access_token=from-query")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
    }

    #[tokio::test]
    async fn the_header_or_a_posted_form_carries_the_token_and_the_query_never_does() {
        let header = Request::builder().header(header::AUTHORIZATION, "Bearer abc");
        assert_eq!(extract(header, "").await.ok().as_deref(), Some("abc"));
        assert_eq!(
            extract(post(), "access_token=xyz").await.ok().as_deref(),
            Some("xyz")
        );
        let query_only = extract(post(), "").await.err().map(|r| r.status());
        assert_eq!(query_only, Some(StatusCode::UNAUTHORIZED), "R39");
    }

    #[tokio::test]
    async fn the_scheme_is_read_in_any_case_and_an_empty_token_is_malformed() {
        let lower = Request::builder().header(header::AUTHORIZATION, "bearer abc");
        assert_eq!(extract(lower, "").await.ok().as_deref(), Some("abc"));
        let lower_and_body = post().header(header::AUTHORIZATION, "BEARER abc");
        let status = extract(lower_and_body, "access_token=xyz")
            .await
            .err()
            .map(|r| r.status());
        assert_eq!(status, Some(StatusCode::BAD_REQUEST), "still two ways");
        let empty = Request::builder().header(header::AUTHORIZATION, "Bearer ");
        let status = extract(empty, "").await.err().map(|r| r.status());
        assert_eq!(status, Some(StatusCode::BAD_REQUEST));
        let basic = Request::builder().header(header::AUTHORIZATION, "Basic YTpi");
        let status = extract(basic, "").await.err().map(|r| r.status());
        assert_eq!(status, Some(StatusCode::UNAUTHORIZED), "not a bearer token");
    }

    #[tokio::test]
    async fn no_token_gets_the_bare_challenge_and_two_tokens_an_error() {
        let missing = extract(Request::builder(), "")
            .await
            .err()
            .unwrap_or_else(|| panic!("refused"));
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            missing.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"writ\""
        );
        let both = post().header(header::AUTHORIZATION, "Bearer abc");
        let both = extract(both, "access_token=xyz")
            .await
            .err()
            .unwrap_or_else(|| panic!("refused"));
        assert_eq!(both.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            both.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"writ\", error=\"invalid_request\""
        );
    }
}
