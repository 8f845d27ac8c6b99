//! Minting: raw tokens are made here and only their hashes enter the
//! command; after the commit, JWTs are signed from the committed
//! `AccessTokenIssued` (its `jti`, `iat`, `exp`) and the response is sent.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cqrs_es::EventEnvelope;
use serde_json::{json, Value};
use writ_domain::client::ClientSettings;
use writ_domain::grant::{
    Grant, GrantCommand, GrantError, GrantEvent, RefreshRequest, TokenRequest,
};
use writ_domain::values::{SecretHash, TokenFormat};
use writ_edge::{no_store, AuthenticatedClient, OAuthError};
use writ_infra::crypto::{random_token, sha256_hex};
use writ_infra::signing::jwt;
use writ_infra::tokens::{self, TokenKind, TokenRecord};
use writ_protocol::status_list::{StatusClaim, StatusListReference};
use writ_protocol::{AccessTokenClaims, Audience, Confirmation};
use writ_store::executor::Stream;
use writ_store::{ExecuteError, Metadata};

use crate::CommandState;

pub struct Prepared {
    pub request: TokenRequest,
    access: Option<String>,
    refresh: Option<String>,
}

fn hash(raw: &str) -> SecretHash {
    SecretHash(sha256_hex(raw.as_bytes()))
}

/// Fresh secrets for one token response: an opaque access token when the
/// client wants those, and a refresh token when `with_refresh`. With a
/// DPoP key, the access token is bound to it, and so is a public client's
/// refresh token (RFC 9449 §5): a confidential client's is bound to its
/// credentials already. A FAPI 2.0 client's refresh token is bound to the
/// key too, and is never rotated, so it has no idle lifetime of its own.
pub fn prepare(
    state: &CommandState,
    settings: &ClientSettings,
    with_refresh: bool,
    dpop_jkt: Option<String>,
) -> Result<Prepared, OAuthError> {
    let fapi2 = settings.fapi2(state.fapi2);
    let idle = if fapi2 {
        Duration::from_secs(settings.refresh_token_ttl_secs)
    } else {
        state.refresh_token_idle_ttl
    };
    let access = (settings.token_format == TokenFormat::Opaque).then(random_token);
    // A JWT is checked where it is used, so it says where its status is;
    // an opaque token is only ever introspected.
    let status = match access {
        Some(_) => None,
        None => Some(state.status_lists.next().ok_or_else(|| {
            OAuthError::unavailable().because("no status list index is free yet")
        })?),
    };
    let refresh = with_refresh.then(random_token);
    Ok(Prepared {
        request: TokenRequest {
            access_ttl_secs: settings.access_token_ttl_secs,
            opaque_access_hash: access.as_deref().map(hash),
            refresh: refresh.as_deref().map(|raw| RefreshRequest {
                token_hash: hash(raw),
                idle_ttl_secs: idle.as_secs().max(1),
                family_ttl_secs: settings.refresh_token_ttl_secs,
                jkt: dpop_jkt.clone().filter(|_| settings.public || fapi2),
            }),
            audience: None,
            dpop_jkt,
            status,
        },
        access,
        refresh,
    })
}

/// The DPoP proof a token request carries. It is accepted, and recorded
/// as used, only once the code or refresh token is found and its key
/// binding checked, so that an unknown one, or a bound one without its
/// key, writes nothing to the log.
pub struct DpopProof<'a> {
    pub header: Option<&'a str>,
    pub request_id: &'a str,
}

impl DpopProof<'_> {
    /// The thumbprint of the proof's key, once the proof is accepted. A
    /// proof by another key than the one the code or refresh token is
    /// `bound_to` is refused before it is recorded.
    pub async fn key(
        &self,
        state: &CommandState,
        client: &AuthenticatedClient,
        bound_to: Option<&str>,
    ) -> Result<Option<String>, OAuthError> {
        let Some(proof) = self.header else {
            // Without its key a bound code or refresh token is nothing: it
            // must not reach the grant, where a spent code or a rotated
            // token would revoke what the rightful client holds.
            return match bound_to {
                Some(_) => Err(invalid_grant()),
                None => Ok(None),
            };
        };
        let request = writ_edge::dpop::ProofFor {
            method: "POST",
            path: "/token",
            access_token: None,
            bound_to,
            client_id: &client.client_id,
            request_id: self.request_id,
            fapi2: client.settings.fapi2(state.fapi2),
        };
        state
            .dpop
            .accept(proof, &request)
            .await
            .map(|proof| Some(proof.jkt))
            .map_err(|refused| match refused {
                // RFC 9449 §5, §10: the code or refresh token is not this
                // key's, which its holder learns as of any bad grant.
                writ_edge::dpop::Refused::WrongKey => invalid_grant(),
                other => other.at_token_endpoint(),
            })
    }
}

/// The code or refresh token a client presents, if Writ issued it as
/// `kind` and everyone behind it is still live; anything else is RFC 6749's
/// generic `invalid_grant`. The aggregate knows only its own stream, so a
/// disabled client or account, or a password changed since the grant
/// began, is checked here against the inline rows (the policy revokes the
/// grant soon after).
pub async fn presented(
    state: &CommandState,
    value: &str,
    kind: TokenKind,
) -> Result<TokenRecord, OAuthError> {
    tokens::find(&state.store, &state.keys, value)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?
        .filter(|record| record.kind == kind && record.holder_is_live())
        .ok_or_else(invalid_grant)
}

/// Who the token is about, for the JWT claims.
pub struct Subject<'a> {
    pub client_id: &'a str,
    pub sub: Option<&'a str>,
    pub audience: &'a [String],
    pub gid: &'a str,
    /// RFC 8693 §4.1: who acts for the subject, for an exchanged grant.
    pub act: Option<&'a Value>,
}

pub fn respond(
    state: &CommandState,
    subject: Subject<'_>,
    events: &[EventEnvelope<Grant>],
    prepared: Prepared,
) -> Result<Response, OAuthError> {
    body(state, subject, events, prepared).map(|issued| send(issued.body))
}

/// A token response's body, and what an id_token needs to know of it.
pub struct Issued {
    pub body: Value,
    pub access_token: String,
    pub issued_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub scopes: writ_domain::values::ScopeSet,
}

pub fn send(body: Value) -> Response {
    let mut response = (StatusCode::OK, Json(body)).into_response();
    no_store(&mut response);
    response
}

/// The token response for the committed `AccessTokenIssued`.
pub fn body(
    state: &CommandState,
    subject: Subject<'_>,
    events: &[EventEnvelope<Grant>],
    prepared: Prepared,
) -> Result<Issued, OAuthError> {
    let issued = events.iter().find_map(|e| match &e.payload {
        GrantEvent::AccessTokenIssued {
            jti,
            scopes,
            issued_at,
            expires_at,
            jkt,
            status,
            ..
        } => Some((jti, scopes, issued_at, expires_at, jkt, status)),
        _ => None,
    });
    let Some((jti, scopes, issued_at, expires_at, jkt, status)) = issued else {
        return Err(OAuthError::unavailable());
    };
    let access_token = match prepared.access {
        Some(opaque) => opaque,
        None => {
            let signer = state
                .keys
                .signer(&state.signing_alg)
                .ok_or_else(OAuthError::unavailable)?;
            let claims = AccessTokenClaims {
                iss: state.issuer.clone(),
                sub: Some(subject.sub.unwrap_or(subject.client_id).to_owned()),
                aud: Audience::from_slice(subject.audience),
                exp: expires_at.timestamp(),
                iat: Some(issued_at.timestamp()),
                nbf: Some(issued_at.timestamp()),
                jti: Some(jti.clone()),
                client_id: Some(subject.client_id.to_owned()),
                scope: Some(scopes.to_string()),
                gid: Some(subject.gid.to_owned()),
                cnf: jkt.clone().map(|jkt| Confirmation { jkt }),
                act: subject.act.cloned(),
                status: status.as_ref().map(|slot| StatusClaim {
                    status_list: StatusListReference {
                        idx: u64::from(slot.idx),
                        uri: state.status_lists.uri(&slot.list),
                    },
                }),
            };
            jwt::encode(&signer, "at+jwt", &claims)
                .map_err(|e| OAuthError::unavailable().because(e))?
        }
    };
    let mut body = json!({
        "access_token": access_token.clone(),
        // RFC 9449 §5: a bound token is presented as `DPoP`, not `Bearer`.
        "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": (*expires_at - *issued_at).num_seconds(),
    });
    if !scopes.is_empty() {
        body["scope"] = Value::String(scopes.to_string());
    }
    if let Some(refresh) = prepared.refresh {
        body["refresh_token"] = Value::String(refresh);
    }
    Ok(Issued {
        body,
        access_token,
        issued_at: *issued_at,
        expires_at: *expires_at,
        scopes: scopes.clone(),
    })
}

/// Starts a new grant (a fresh stream, so nothing to load) with the
/// command `build` makes from the prepared token request, and answers with
/// its tokens once committed.
pub async fn start_grant(
    state: &CommandState,
    metadata: &Metadata,
    subject: Subject<'_>,
    prepared: Prepared,
    build: impl FnOnce(TokenRequest) -> GrantCommand,
) -> Result<Response, OAuthError> {
    let command = build(prepared.request.clone());
    let committed = state
        .executor
        .execute_with::<Grant>(subject.gid, command, metadata, Vec::new(), Stream::New)
        .await
        .map_err(refused)?;
    respond(state, subject, &committed.events, prepared)
}

/// The one description of every refused code or refresh token: a text
/// telling an unknown value from another client's, an expired, a used or a
/// revoked one would confirm to whoever stole it that it is real.
pub const INVALID_GRANT: &str =
    "the authorization code or refresh token is invalid, expired, revoked, or was issued to another client";

/// A new grant's id: its stream in the log and `gid` in its tokens. Time
/// ordered (UUID v7), so that the grant's rows and events append to their
/// indexes (ADR 0025); not a secret, it is in every token of the grant.
pub fn new_gid() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// RFC 6749 §5.2 `invalid_grant` with [`INVALID_GRANT`].
pub fn invalid_grant() -> OAuthError {
    OAuthError::invalid_grant(INVALID_GRANT)
}

/// Refusals map to `invalid_grant` (scope escalation to `invalid_scope`);
/// a store that is down or a commit whose outcome is unknown to 503.
pub fn polling(error: writ_edge::ErrorCode, description: &str) -> OAuthError {
    OAuthError::new(axum::http::StatusCode::BAD_REQUEST, error, description)
}

pub fn refused(err: ExecuteError<GrantError>) -> OAuthError {
    match err {
        ExecuteError::Rejected(GrantError::ScopeEscalation) => {
            OAuthError::invalid_scope("the requested scope exceeds the granted scope")
        }
        ExecuteError::Rejected(GrantError::DelegationTooDeep) => {
            OAuthError::invalid_request("the chain of exchanges is too long")
        }
        ExecuteError::Rejected(GrantError::ResourceNotGranted) => OAuthError::new(
            axum::http::StatusCode::BAD_REQUEST,
            writ_edge::ErrorCode::InvalidTarget,
            "a requested resource was not granted",
        ),
        // RFC 8628 §3.5: what a polling device is told, to its own client
        // holding its own code only (the aggregate checks both first).
        ExecuteError::Rejected(GrantError::AuthorizationPending) => polling(
            writ_edge::ErrorCode::AuthorizationPending,
            "the person has not answered yet; poll again after the interval",
        ),
        ExecuteError::Rejected(GrantError::DeviceAccessDenied) => polling(
            writ_edge::ErrorCode::AccessDenied,
            "the person denied the request",
        ),
        ExecuteError::Rejected(GrantError::DeviceCodeExpired) => polling(
            writ_edge::ErrorCode::ExpiredToken,
            "the device code has expired; start again",
        ),
        // The aggregate's reason stays in the log: the client learns no
        // more than that the grant is not good (L5).
        ExecuteError::Rejected(reason) => invalid_grant().because(reason),
        failure @ (ExecuteError::Conflict
        | ExecuteError::Unavailable(_)
        | ExecuteError::OutcomeUnknown) => OAuthError::unavailable().because(failure),
    }
}
