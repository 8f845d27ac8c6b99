//! `POST /revoke` (RFC 7009). 200 for a revoked or unknown token, and only
//! once the revocation is committed; 503 when the store cannot confirm it.
//! Another client's token is left alone and still answered 200 (§2.1).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use writ_domain::grant::{Grant, GrantCommand, TokenRef};
use writ_domain::values::SecretHash;
use writ_edge::openapi::{tag, ErrorBody, TokenAndHint};
use writ_edge::{no_store, ClientRequest, OAuthError};
use writ_infra::tokens::{self, TokenKind};
use writ_store::ExecuteError;

use crate::CommandState;

pub const CURSOR_HEADER: &str = "writ-cursor";

/// Revokes a token and, with it, its grant (RFC 7009). Answers 200 for
/// an unknown token or another client's, which is left alone (§2.1), and
/// only once the revocation is committed; `writ-cursor` names the commit,
/// for a read-your-writes introspection.
#[utoipa::path(
    post,
    path = "/revoke",
    tag = tag::OAUTH,
    request_body(content = TokenAndHint, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "Revoked, or nothing of this client's to revoke.", headers(("writ-cursor" = String, description = "The commit that holds the revocation."))),
        (status = 400, description = "`invalid_request`: no `token`.", body = ErrorBody),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate`.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`: the revocation could not be confirmed.", body = ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<CommandState>,
    request: ClientRequest,
) -> Result<Response, OAuthError> {
    let state = &state;
    let ClientRequest {
        client,
        form,
        request_id,
        ..
    } = request;
    let presented = form.require("token")?;
    // token_type_hint is only a hint (§2.1); the lookup finds either kind.
    let record = tokens::find(&state.store, &state.keys, presented)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?;
    let mut cursor = state.store.commits().borrow().to_string();
    if let Some(record) = record.filter(|r| r.client_id == client.client_id) {
        let token = match (&record.kind, &record.jti) {
            (TokenKind::Access, Some(jti)) if record.key.starts_with("jti:") => {
                Some(TokenRef::AccessJti(jti.clone()))
            }
            (TokenKind::Access, _) => Some(TokenRef::AccessHash(SecretHash(record.key.clone()))),
            (TokenKind::Refresh, _) => Some(TokenRef::RefreshHash(SecretHash(record.key.clone()))),
            (TokenKind::Code | TokenKind::DeviceCode | TokenKind::Unrecognised, _) => None,
        };
        if let Some(token) = token {
            let metadata = crate::metadata::client_metadata(&client, request_id);
            let command = GrantCommand::RevokeToken {
                client_id: client.client_id.clone(),
                token,
                by: metadata.actor.clone(),
            };
            match state
                .executor
                .execute::<Grant>(&record.gid, command, &metadata)
                .await
            {
                Ok(committed) => {
                    if let Some(at) = committed.cursor {
                        cursor = at.to_string();
                    }
                }
                // Already revoked, rotated or otherwise dead: nothing to do.
                Err(ExecuteError::Rejected(_)) => {}
                Err(_) => return Err(OAuthError::unavailable()),
            }
        }
    }
    let mut response = StatusCode::OK.into_response();
    no_store(&mut response);
    if let Ok(value) = HeaderValue::from_str(&cursor) {
        response.headers_mut().insert(CURSOR_HEADER, value);
    }
    Ok(response)
}
