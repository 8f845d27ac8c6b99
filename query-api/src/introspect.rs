//! `POST /introspect` (RFC 7662). Confidential clients only; a client sees
//! its own tokens and tokens whose audience names it, by client id or by a
//! resource URI in its `resources` setting. Anything else, and
//! every inactive token, is `{"active": false}` and nothing more. A caller
//! that asks for `application/token-introspection+jwt` gets the same
//! answer signed (RFC 9701), so it can prove what Writ told it.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::DateTime;
use serde::Serialize;
use writ_edge::{no_store, ConfidentialClientRequest, OAuthError};
use writ_infra::tokens::{self, TokenKind, TokenRecord};

use writ_edge::openapi::{tag, ErrorBody, TokenAndHint};

use crate::QueryState;

/// Token introspection (RFC 7662), for confidential clients (HTTP Basic,
/// `client_id` and `client_secret` in the form, or a `private_key_jwt`
/// client assertion): the token's claims when
/// it is active and the caller may see it, else only `{"active": false}`.
#[utoipa::path(
    post,
    path = "/introspect",
    tag = tag::OAUTH,
    request_body(content = TokenAndHint, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "RFC 7662 §2.2: `active`, and for an active token `client_id`, `sub`, `iss`, `exp`, `iat`, `aud`, `scope`, `token_type`, plus Writ's `gid` and `writ_cursor`. With `Accept: application/token-introspection+jwt`, that answer as the `token_introspection` claim of a JWT signed with the access-token key (RFC 9701), `typ` `token-introspection+jwt`, `aud` the caller.", body = Object),
        (status = 400, description = "`invalid_request`: no `token`.", body = ErrorBody),
        (status = 401, description = "`invalid_client`: not a confidential client's credentials; `WWW-Authenticate`.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = ErrorBody),
    )
)]
pub async fn introspect(
    State(state): State<QueryState>,
    headers: HeaderMap,
    request: Result<ConfidentialClientRequest, OAuthError>,
) -> Response {
    let signed = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| media.split(';').next().map(str::trim) == Some(SIGNED_ANSWER));
    let outcome = match request {
        Ok(request) => handle(&state, request, signed).await,
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

/// RFC 9701 §4's media type.
const SIGNED_ANSWER: &str = "application/token-introspection+jwt";

async fn handle(
    state: &QueryState,
    ConfidentialClientRequest { client, form, .. }: ConfidentialClientRequest,
    signed: bool,
) -> Result<Response, OAuthError> {
    let presented = form.require("token")?;
    let record = tokens::find_checked(&state.store, &state.keys, presented, client.checked)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?;
    let now = state.services.now();
    let visible = record.as_ref().filter(|record| {
        record.is_active(now)
            && record.may_be_seen_by(&client.client_id, &client.settings.resources)
    });
    if signed {
        let answer = match visible {
            Some(record) => serde_json::to_value(Active::of(state, record)),
            None => serde_json::to_value(Inactive { active: false }),
        }
        .map_err(|e| OAuthError::unavailable().because(e))?;
        return signed_answer(state, &client.client_id, now.timestamp(), answer);
    }
    Ok(match visible {
        Some(record) => (StatusCode::OK, Json(Active::of(state, record))).into_response(),
        None => (StatusCode::OK, Json(Inactive { active: false })).into_response(),
    })
}

/// RFC 9701 §5: the answer as a claim of a JWT for the caller, signed with
/// the key access tokens are signed with (published in the JWKS).
fn signed_answer(
    state: &QueryState,
    caller: &str,
    now: i64,
    answer: serde_json::Value,
) -> Result<Response, OAuthError> {
    let signer = state
        .keys
        .signer(&state.signing_alg)
        .ok_or_else(|| OAuthError::unavailable().because("no active signing key"))?;
    let claims = serde_json::json!({
        "iss": state.issuer,
        "aud": caller,
        "iat": now,
        "token_introspection": answer,
    });
    let jwt = writ_infra::signing::jwt::encode(&signer, "token-introspection+jwt", &claims)
        .map_err(|e| OAuthError::unavailable().because(e))?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SIGNED_ANSWER),
        )],
        jwt,
    )
        .into_response())
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
    /// RFC 8693 §4.1: who acts for the subject of an exchanged token.
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a serde_json::Value>,
    aud: &'a [String],
    client_id: &'a str,
    /// RFC 9449 §6.2: the key a DPoP-bound token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
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

#[derive(Serialize)]
struct Confirmation<'a> {
    jkt: &'a str,
}

impl<'a> Active<'a> {
    fn of(state: &'a QueryState, record: &'a TokenRecord) -> Self {
        Self {
            active: true,
            act: record.act.as_ref(),
            aud: &record.audience,
            client_id: &record.client_id,
            exp: seconds(&record.expires_at),
            gid: &record.gid,
            iat: seconds(&record.issued_at),
            iss: &state.issuer,
            jti: record.jti.as_deref(),
            scope: &record.scopes,
            sub: record.sub.as_deref().unwrap_or(&record.client_id),
            token_type: match (record.kind, &record.jkt) {
                (TokenKind::Refresh, _) => "refresh_token",
                (_, Some(_)) => "DPoP",
                (_, None) => "Bearer",
            },
            writ_cursor: &record.cursor,
            cnf: record.jkt.as_deref().map(|jkt| Confirmation { jkt }),
        }
    }
}

fn seconds(rfc3339: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp())
}
