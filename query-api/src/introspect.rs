//! `POST /introspect` (RFC 7662). Confidential clients only; a client sees
//! its own tokens and tokens whose audience names it, by client id or by a
//! resource URI in its `resources` setting. Anything else, and
//! every inactive token, is `{"active": false}` and nothing more.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::DateTime;
use serde::Serialize;
use writ_edge::{no_store, ConfidentialClientRequest, OAuthError};
use writ_infra::tokens::{self, TokenKind, TokenRecord};

use writ_edge::openapi::{tag, ErrorBody, TokenAndHint};

use crate::QueryState;

/// Token introspection (RFC 7662), for confidential clients (HTTP Basic,
/// or `client_id` and `client_secret` in the form): the token's claims when
/// it is active and the caller may see it, else only `{"active": false}`.
#[utoipa::path(
    post,
    path = "/introspect",
    tag = tag::OAUTH,
    request_body(content = TokenAndHint, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "RFC 7662 §2.2: `active`, and for an active token `client_id`, `sub`, `iss`, `exp`, `iat`, `aud`, `scope`, `token_type`, plus Writ's `gid` and `writ_cursor`.", body = Object),
        (status = 400, description = "`invalid_request`: no `token`.", body = ErrorBody),
        (status = 401, description = "`invalid_client`: not a confidential client's credentials; `WWW-Authenticate`.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = ErrorBody),
    )
)]
pub async fn introspect(
    State(state): State<QueryState>,
    request: Result<ConfidentialClientRequest, OAuthError>,
) -> Response {
    let outcome = match request {
        Ok(request) => handle(&state, request).await,
        Err(refused) => Err(refused),
    };
    match outcome {
        Ok(mut response) => {
            no_store(&mut response);
            response
        }
        Err(err) => err.into_response(),
    }
}

async fn handle(
    state: &QueryState,
    ConfidentialClientRequest { client, form, .. }: ConfidentialClientRequest,
) -> Result<Response, OAuthError> {
    let presented = form.require("token")?;
    let record = tokens::find_checked(&state.store, &state.keys, presented, client.checked)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?;
    let now = state.services.now();
    Ok(match record {
        Some(record)
            if record.is_active(now)
                && record.may_be_seen_by(&client.client_id, &client.settings.resources) =>
        {
            (StatusCode::OK, Json(Active::of(state, &record))).into_response()
        }
        _ => (StatusCode::OK, Json(Inactive { active: false })).into_response(),
    })
}

#[derive(Serialize)]
struct Inactive {
    active: bool,
}

/// RFC 7662 §2.2's members for an active token, plus Writ's `gid` and
/// `writ_cursor`, in alphabetical order as the answer has always had them.
#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    aud: &'a [String],
    client_id: &'a str,
    exp: Option<i64>,
    gid: &'a str,
    iat: Option<i64>,
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    sub: &'a str,
    token_type: &'static str,
    writ_cursor: &'a str,
}

impl<'a> Active<'a> {
    fn of(state: &'a QueryState, record: &'a TokenRecord) -> Self {
        Self {
            active: true,
            aud: &record.audience,
            client_id: &record.client_id,
            exp: seconds(&record.expires_at),
            gid: &record.gid,
            iat: seconds(&record.issued_at),
            iss: &state.issuer,
            jti: record.jti.as_deref(),
            scope: &record.scopes,
            sub: record.sub.as_deref().unwrap_or(&record.client_id),
            token_type: match record.kind {
                TokenKind::Refresh => "refresh_token",
                _ => "Bearer",
            },
            writ_cursor: &record.cursor,
        }
    }
}

fn seconds(rfc3339: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp())
}
