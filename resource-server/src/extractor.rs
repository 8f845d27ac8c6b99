//! The axum side (the `axum` feature): an extractor that authenticates the
//! bearer token, or the DPoP-bound token and its proof, and RFC 6750 and
//! RFC 9449 errors as responses with their `WWW-Authenticate` challenge.

use axum::extract::{FromRef, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::dpop::DpopRequest;
use crate::rejection::Rejection;
use crate::verify::{Principal, ResourceServer};

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let challenge = HeaderValue::from_str(&self.challenge())
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        let body = serde_json::json!({
            "error": self.error.unwrap_or(if self.status == StatusCode::SERVICE_UNAVAILABLE { "temporarily_unavailable" } else { "invalid_token" }),
            "error_description": self.description,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status != StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// A request whose bearer token verified and is not revoked. The router's
/// state must give a [`ResourceServer`] (`FromRef`).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// Refuses with `insufficient_scope` unless the token carries `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<&Principal, Rejection> {
        if self.0.scopes.contains(scope) {
            Ok(&self.0)
        } else {
            Err(Rejection::insufficient_scope(scope))
        }
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    ResourceServer: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        let server = ResourceServer::from_ref(state);
        let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(if parts.headers.contains_key(header::AUTHORIZATION) {
                Rejection::invalid_request("more than one Authorization header")
            } else {
                Rejection::missing()
            });
        };
        let value = value
            .to_str()
            .map_err(|_| Rejection::invalid_request("the Authorization header is not text"))?;
        let (scheme, token) = match value.split_once(' ') {
            Some((scheme, token)) if !token.trim().is_empty() => (scheme, token.trim()),
            _ => return Err(Rejection::missing()),
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            return server.authenticate(token).await.map(Authenticated);
        }
        if !scheme.eq_ignore_ascii_case("dpop") {
            return Err(Rejection::missing());
        }
        let mut proofs = parts.headers.get_all("dpop").iter();
        let proof = match (proofs.next(), proofs.next()) {
            (None, _) => None,
            (Some(proof), None) => Some(proof.to_str().map_err(|_| {
                Rejection::dpop("invalid_dpop_proof", "the DPoP header is not text")
            })?),
            (Some(_), Some(_)) => {
                return Err(Rejection::dpop(
                    "invalid_dpop_proof",
                    "send one DPoP header, not several",
                ))
            }
        };
        // A nested router sees its own part of the path; `htu` names all.
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path(), |original| original.0.path());
        let request = DpopRequest {
            proof,
            method: parts.method.as_str(),
            path,
        };
        server
            .authenticate_dpop(token, request)
            .await
            .map(Authenticated)
    }
}
