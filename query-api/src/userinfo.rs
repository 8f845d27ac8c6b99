//! `GET|POST /userinfo` (OpenID Connect Core §5.3): the bearer token's
//! subject, with `name` for `profile` and `email` for `email`, decrypted
//! under the subject's key. Tokens come from the Authorization header, or
//! a form body on POST (RFC 6750 §2.2); never from the query (R39).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use writ_edge::{form, no_store};
use writ_infra::tokens::{self, TokenKind};

use crate::QueryState;

/// RFC 6750 §3: the error goes in the challenge, not only the body.
fn challenge(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    let value = format!("Bearer realm=\"writ\", error=\"{error}\"");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    no_store(&mut response);
    response
}

fn invalid_token() -> Response {
    challenge(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "the access token is invalid, expired or revoked",
    )
}

async fn bearer(
    method: &Method,
    headers: &HeaderMap,
    body: Body,
) -> Result<Option<String>, Response> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let from_body = if *method == Method::POST && is_form {
        let form = form::read(headers, body)
            .await
            .map_err(|_| challenge(StatusCode::BAD_REQUEST, "invalid_request", "malformed body"))?;
        form.get("access_token").map(str::to_owned)
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(challenge(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the token one way, not two",
        )),
        (token, None) | (None, token) => Ok(token),
    }
}

pub async fn userinfo(
    State(state): State<QueryState>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let token = match bearer(&method, &headers, body).await {
        Ok(Some(token)) => token,
        Ok(None) => {
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"writ\""),
            );
            return response;
        }
        Err(response) => return response,
    };
    let record = match tokens::find(&state.store, &state.keys, &token).await {
        Ok(Some(record))
            if record.kind == TokenKind::Access && record.is_active(state.services.now()) =>
        {
            record
        }
        Ok(_) => return invalid_token(),
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let Some(sub) = record.sub.clone() else {
        return challenge(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the token has no end-user subject",
        );
    };
    let scopes: Vec<&str> = record.scopes.split(' ').collect();
    if !scopes.contains(&"openid") {
        return challenge(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "userinfo needs the openid scope",
        );
    }
    match claims(&state, &sub, &scopes).await {
        Ok(body) => {
            let mut response = Json(body).into_response();
            no_store(&mut response);
            response
        }
        Err(()) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn claims(state: &QueryState, sub: &str, scopes: &[&str]) -> Result<Value, ()> {
    writ_infra::claims::for_scopes(&state.store, &state.key_ring, sub, scopes)
        .await
        .map_err(|_| ())
}
