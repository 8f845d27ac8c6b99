//! `GET|POST /userinfo` (OpenID Connect Core §5.3): the bearer token's
//! subject, with `name` for `profile` and `email` for `email`, decrypted
//! under the subject's key. Tokens come from the Authorization header, or
//! a form body on POST (RFC 6750 §2.2); never from the query (R39).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use writ_edge::{no_store, BearerToken, ErrorCode, OAuthError};
use writ_infra::tokens::{self, TokenKind};

use writ_edge::openapi::{tag, ErrorBody};

use crate::QueryState;

fn insufficient_scope(description: &str) -> OAuthError {
    OAuthError::bearer(
        StatusCode::FORBIDDEN,
        ErrorCode::InsufficientScope,
        description,
    )
}

/// The UserInfo endpoint (OpenID Connect Core §5.3): the access token's
/// subject, with `name` for `profile` and `email` for `email`. POST may
/// send the token as a form field `access_token` (RFC 6750 §2.2).
#[utoipa::path(
    method(get, post),
    path = "/userinfo",
    tag = tag::OAUTH,
    security(("access_token" = [])),
    responses(
        (status = 200, description = "`sub`, and the claims the token's scopes allow.", body = Object),
        (status = 400, description = "`invalid_request`: the token is malformed or sent twice.", body = ErrorBody),
        (status = 401, description = "No token: an empty body and a bare `WWW-Authenticate: Bearer` challenge (RFC 6750 §3.1); a token that is not active: `invalid_token`.", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the token lacks `openid`.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = ErrorBody),
    )
)]
pub async fn userinfo(
    State(state): State<QueryState>,
    BearerToken(token): BearerToken,
) -> Result<Response, OAuthError> {
    let record = tokens::find(&state.store, &state.keys, &token)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?
        .filter(|record| record.kind == TokenKind::Access && record.is_active(state.services.now()))
        .ok_or_else(|| {
            OAuthError::bearer(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidToken,
                "the access token is invalid, expired or revoked",
            )
        })?;
    let sub = record
        .sub
        .as_deref()
        .ok_or_else(|| insufficient_scope("the token has no end-user subject"))?;
    let scopes: Vec<&str> = record.scopes.split(' ').collect();
    if !scopes.contains(&"openid") {
        return Err(insufficient_scope("userinfo needs the openid scope"));
    }
    let claims = writ_infra::claims::for_scopes(&state.store, &state.key_ring, sub, &scopes)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?;
    let mut response = Json(claims).into_response();
    no_store(&mut response);
    Ok(response)
}
