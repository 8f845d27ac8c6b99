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

use crate::QueryState;

fn insufficient_scope(description: &str) -> OAuthError {
    OAuthError::bearer(
        StatusCode::FORBIDDEN,
        ErrorCode::InsufficientScope,
        description,
    )
}

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
