//! `GET|POST /userinfo` (OpenID Connect Core §5.3): the bearer token's
//! subject, with `name` for `profile` and `email` for `email`, decrypted
//! under the subject's key. Tokens come from the Authorization header, or
//! a form body on POST (RFC 6750 §2.2); never from the query (R39).

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use writ_edge::dpop::{self, ProofFor};
use writ_edge::{no_store, BearerToken, ErrorCode, OAuthError};
use writ_infra::tokens::{self, TokenKind, TokenRecord};

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
    params(("DPoP" = Option<String>, Header, description = "With `Authorization: DPoP`: a proof (RFC 9449 §7) by the key the token is bound to, carrying `ath`.")),
    responses(
        (status = 200, description = "`sub`, and the claims the token's scopes allow.", body = Object),
        (status = 400, description = "`invalid_request`: the token is malformed or sent twice.", body = ErrorBody),
        (status = 401, description = "No token: an empty body and a bare `WWW-Authenticate: Bearer` challenge (RFC 6750 §3.1); a token that is not active: `invalid_token`; a DPoP-bound token as Bearer, or a bad proof: `invalid_token` or `invalid_dpop_proof` (`use_dpop_nonce` with `DPoP-Nonce`) with a `DPoP` challenge (RFC 9449 §7.1).", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the token lacks `openid`.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = ErrorBody),
    )
)]
pub async fn userinfo(
    State(state): State<QueryState>,
    method: Method,
    headers: HeaderMap,
    BearerToken { token, dpop }: BearerToken,
) -> Result<Response, OAuthError> {
    let record = tokens::find(&state.store, &state.keys, &token)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?
        .filter(|record| record.kind == TokenKind::Access && record.is_active(state.services.now()))
        .ok_or_else(|| {
            let why = "the access token is invalid, expired or revoked";
            // RFC 9449 §7.1: answered in the scheme it was presented in.
            if dpop {
                dpop::challenge(ErrorCode::InvalidToken, why)
            } else {
                OAuthError::bearer(StatusCode::UNAUTHORIZED, ErrorCode::InvalidToken, why)
            }
        })?;
    proves_possession(&state, &method, &headers, &token, dpop, &record).await?;
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
    if dpop {
        state.dpop.next_nonce(&mut response);
    }
    Ok(response)
}

/// RFC 9449 §7: a DPoP-bound token is accepted only under the `DPoP`
/// scheme with a proof signed by its key and carrying its hash (`ath`);
/// a bearer token is not accepted under `DPoP`. The proof is recorded as
/// used only once the token and its binding are known good.
async fn proves_possession(
    state: &QueryState,
    method: &Method,
    headers: &HeaderMap,
    token: &str,
    presented_as_dpop: bool,
    record: &TokenRecord,
) -> Result<(), OAuthError> {
    let bound_to = match (&record.jkt, presented_as_dpop) {
        (None, false) => return Ok(()),
        (None, true) => {
            return Err(dpop::challenge(
                ErrorCode::InvalidToken,
                "this access token is not DPoP-bound; present it as Bearer",
            ))
        }
        (Some(_), false) => {
            return Err(dpop::challenge(
                ErrorCode::InvalidToken,
                "this access token is DPoP-bound; present it as DPoP, with a proof",
            ))
        }
        (Some(jkt), true) => jkt,
    };
    let proof = dpop::header(headers)
        .map_err(dpop::Refused::at_resource)?
        .ok_or_else(|| {
            dpop::challenge(
                ErrorCode::InvalidDpopProof,
                "a DPoP-bound token needs a DPoP proof",
            )
        })?;
    let request = ProofFor {
        method: method.as_str(),
        path: "/userinfo",
        access_token: Some(token),
        bound_to: Some(bound_to),
        client_id: &record.client_id,
        request_id: &writ_edge::request_id(headers),
        fapi2: state.fapi2,
    };
    state
        .dpop
        .accept(proof, &request)
        .await
        .map(drop)
        .map_err(dpop::Refused::at_resource)
}
