//! `POST /introspect` (RFC 7662). Confidential clients only; a client sees
//! its own tokens and tokens whose audience names it, by client id or by a
//! resource URI in its `resources` setting. Anything else, and
//! every inactive token, is `{"active": false}` and nothing more.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::DateTime;
use serde_json::{json, Value};
use writ_edge::{no_store, ConfidentialClientRequest, OAuthError};
use writ_infra::tokens::{self, TokenKind, TokenRecord};

use crate::QueryState;

pub async fn introspect(
    State(state): State<QueryState>,
    request: Result<ConfidentialClientRequest, OAuthError>,
) -> Response {
    let outcome = match request {
        Ok(request) => handle(&state, request).await,
        Err(refused) => Err(refused),
    };
    match outcome {
        Ok(body) => {
            let mut response = (StatusCode::OK, Json(body)).into_response();
            no_store(&mut response);
            response
        }
        Err(err) => err.into_response(),
    }
}

async fn handle(
    state: &QueryState,
    ConfidentialClientRequest { client, form, .. }: ConfidentialClientRequest,
) -> Result<Value, OAuthError> {
    let presented = form.require("token")?;
    let record = tokens::find(&state.store, &state.keys, presented)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?;
    let now = state.services.now();
    Ok(match record {
        Some(record)
            if record.is_active(now)
                && record.may_be_seen_by(&client.client_id, &client.settings.resources) =>
        {
            active(state, &record)
        }
        _ => json!({ "active": false }),
    })
}

fn seconds(rfc3339: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp())
}

fn active(state: &QueryState, record: &TokenRecord) -> Value {
    let mut body = json!({
        "active": true,
        "client_id": record.client_id,
        "sub": record.sub.clone().unwrap_or_else(|| record.client_id.clone()),
        "iss": state.issuer,
        "exp": seconds(&record.expires_at),
        "iat": seconds(&record.issued_at),
        "aud": record.audience,
        "gid": record.gid,
        "token_type": match record.kind { TokenKind::Refresh => "refresh_token", _ => "Bearer" },
        "writ_cursor": record.cursor,
    });
    if !record.scopes.is_empty() {
        body["scope"] = Value::String(record.scopes.clone());
    }
    if let Some(jti) = &record.jti {
        body["jti"] = Value::String(jti.clone());
    }
    body
}
