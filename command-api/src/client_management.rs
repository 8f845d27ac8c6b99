//! `GET|PUT|DELETE /register/{client_id}`: RFC 7592 client management.
//! A client registered through `/register` reads, replaces and deletes its
//! own registration with the registration access token it was last given
//! (each read or update hands out the next). The token is checked against
//! the log itself (the `Client` stream), where only its SHA-256 is kept; a
//! deleted client's token, and a token shown at another client's URI, is
//! `401 invalid_token`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use writ_domain::client::{Client, ClientCommand, ClientError, ClientSettings, ClientStatus};
use writ_domain::values::SecretHash;
use writ_domain::values::{ApplicationType, GrantType};
use writ_edge::openapi::{tag, ErrorBody};
use writ_edge::{bearer, form, no_store, ErrorCode, OAuthError};
use writ_infra::crypto::{constant_time_eq, random_token, sha256_hex};
use writ_store::{ExecuteError, Metadata};

use crate::metadata::request_id;
use crate::register::{described, invalid, settings_from, Metadata7591};
use crate::CommandState;

/// RFC 7592 §2.2: the server's own fields, which a client must not send.
const SERVER_FIELDS: &[&str] = &[
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

/// The client, once its registration access token checked out; otherwise
/// the RFC 6750 §3.1 answer: a bare challenge without a token, else
/// `invalid_token` (also for an unknown or deleted client, RFC 7592 §2.1).
async fn authorized(
    state: &CommandState,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<(Client, ClientSettings), Response> {
    // Without any token there is nothing to check the log for.
    if bearer::from_header(headers).is_none() {
        return Err(gone(headers));
    }
    let client = state
        .executor
        .load::<Client>(client_id)
        .await
        .map_err(|why| OAuthError::unavailable().because(why).into_response())?;
    let live_hash = (client.status == ClientStatus::Active)
        .then_some(client.registration_token_hash.as_ref())
        .flatten()
        .map(|hash| hash.0.as_str());
    let description = "a valid registration access token for this client is required";
    if let Some(refused) = bearer::refusal_by_hash(headers, live_hash, bearer::REALM, description) {
        return Err(refused);
    }
    match client.settings.clone() {
        Some(settings) => Ok((client, settings)),
        None => Err(OAuthError::unavailable().into_response()),
    }
}

/// RFC 7592 §3: every answer carries a registration access token, and
/// Writ keeps only hashes, so each read or update hands out a new one and
/// retires the one presented (recorded as `RegistrationTokenRotated`).
async fn rotated(
    state: &CommandState,
    headers: &HeaderMap,
    client: &Client,
) -> Result<String, Response> {
    let presented = bearer::from_header(headers).unwrap_or_default();
    let next = random_token();
    let command = ClientCommand::RotateRegistrationToken {
        presented: SecretHash(sha256_hex(presented.as_bytes())),
        next: SecretHash(sha256_hex(next.as_bytes())),
    };
    match state
        .executor
        .execute::<Client>(
            &client.client_id,
            command,
            &recorded_as(headers, &client.client_id),
        )
        .await
    {
        Ok(_) => Ok(next),
        // Another request with the same token won, or the client went.
        Err(ExecuteError::Rejected(_)) => Err(gone(headers)),
        Err(e) => Err(OAuthError::unavailable().because(e).into_response()),
    }
}

fn answer(
    state: &CommandState,
    client: &Client,
    settings: &ClientSettings,
    token: String,
) -> Response {
    let issued_at = client.registered_at.map(|t| t.timestamp()).unwrap_or(0);
    let mut body = described(state, &client.client_id, settings, issued_at);
    body["registration_access_token"] = Value::String(token);
    let mut response = Json(body).into_response();
    no_store(&mut response);
    response
}

fn recorded_as(headers: &HeaderMap, client_id: &str) -> Metadata {
    Metadata::client(
        client_id,
        &request_id(headers),
        Some("registration_access_token"),
    )
}

/// Reads a client's registration (RFC 7592 §2.1).
#[utoipa::path(
    get,
    path = "/register/{client_id}",
    tag = tag::OAUTH,
    params(("client_id" = String, Path, description = "The registered client.")),
    security(("registration_access_token" = [])),
    responses(
        (status = 200, description = "The client's metadata with `registration_client_uri` and a new `registration_access_token` (the one presented retires); no secret.", body = Object),
        (status = 401, description = "No token: an empty body and a bare `WWW-Authenticate: Bearer` challenge; a wrong one, or the client is unknown or deleted: `invalid_token`.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = ErrorBody),
    )
)]
pub async fn read(
    State(state): State<CommandState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (client, settings) = match authorized(&state, &headers, &client_id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    match rotated(&state, &headers, &client).await {
        Ok(token) => answer(&state, &client, &settings, token),
        Err(refused) => refused,
    }
}

/// Replaces a client's registration (RFC 7592 §2.2), validated as
/// registration is, and never wider than it stands: what GET returned,
/// without the server's own fields, is accepted as it is.
#[utoipa::path(
    put,
    path = "/register/{client_id}",
    tag = tag::OAUTH,
    params(("client_id" = String, Path, description = "The registered client.")),
    request_body = Metadata7591,
    security(("registration_access_token" = [])),
    responses(
        (status = 200, description = "The client's metadata as it now stands, with a new `registration_access_token` (the one presented retires).", body = Object),
        (status = 400, description = "`invalid_client_metadata` (also for a `client_id` or `client_secret` that is not this client's, and for an update that would change the authentication method or keys, turn a web client native, widen scope, grant types, redirect or post-logout URIs, resources or the revocation feed, set a new back-channel logout URI, or drop a pushed-request requirement) or `invalid_redirect_uri`; `invalid_request` for a server field (`registration_access_token`, `registration_client_uri`, `client_secret_expires_at`, `client_id_issued_at`).", body = ErrorBody),
        (status = 401, description = "As for GET.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = ErrorBody),
    )
)]
pub async fn replace(
    State(state): State<CommandState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (client, current) = match authorized(&state, &headers, &client_id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    match replaced(&state, &headers, &client, current, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn replaced(
    state: &CommandState,
    headers: &HeaderMap,
    client: &Client,
    current: ClientSettings,
    body: Body,
) -> Result<Response, OAuthError> {
    let bytes = form::capped_body(body)
        .await
        .map_err(|_| invalid(ErrorCode::InvalidClientMetadata, "the body is too large"))?;
    let sent: Value = serde_json::from_slice(&bytes).map_err(|_| {
        invalid(
            ErrorCode::InvalidClientMetadata,
            "the body must be a JSON object of client metadata",
        )
    })?;
    if let Some(field) = SERVER_FIELDS
        .iter()
        .find(|field| sent.get(**field).is_some())
    {
        return Err(OAuthError::invalid_request(format!(
            "{field} is the server's to set (RFC 7592 §2.2)"
        )));
    }
    if sent.get("client_id").and_then(Value::as_str) != Some(client.client_id.as_str()) {
        return Err(invalid(
            ErrorCode::InvalidClientMetadata,
            "client_id must name this client (RFC 7592 §2.2)",
        ));
    }
    if let Some(secret) = sent.get("client_secret") {
        let matches = secret
            .as_str()
            .zip(client.secret_hash.as_ref())
            .is_some_and(|(secret, hash)| {
                constant_time_eq(sha256_hex(secret.as_bytes()).as_bytes(), hash.0.as_bytes())
            });
        if !matches {
            return Err(invalid(
                ErrorCode::InvalidClientMetadata,
                "client_secret is not this client's; the secret is not changed here",
            ));
        }
    }
    // The password grant is an administrator's to give (never through
    // registration); a client that holds it may send it back.
    let mut sent = sent;
    let keeps_password =
        current.grant_types.contains(&GrantType::Password) && take_password_grant(&mut sent);
    let metadata: Metadata7591 = serde_json::from_value(sent).map_err(|_| {
        invalid(
            ErrorCode::InvalidClientMetadata,
            "the body must be a JSON object of client metadata",
        )
    })?;
    let mut metadata_settings = settings_from(state, metadata)?;
    if keeps_password {
        metadata_settings.grant_types.push(GrantType::Password);
        metadata_settings.grant_types.sort();
    }
    // Lifetimes, token format and audience are an administrator's, not
    // client metadata: a replacement keeps them.
    let settings = ClientSettings {
        token_format: current.token_format,
        access_token_ttl_secs: current.access_token_ttl_secs,
        refresh_token_ttl_secs: current.refresh_token_ttl_secs,
        audience: current.audience.clone(),
        ..metadata_settings
    };
    if let Some(widened) = widens(&current, &settings) {
        return Err(invalid(
            ErrorCode::InvalidClientMetadata,
            format!(
                "a registration update may narrow {widened}, never widen it; ask an administrator"
            ),
        ));
    }
    // A replacement that changes nothing records nothing: a client cannot
    // lengthen its own stream by repeating itself.
    if settings != current {
        changed(state, headers, client, &settings).await?;
    }
    match rotated(state, headers, client).await {
        Ok(token) => Ok(answer(state, client, &settings, token)),
        Err(refused) => Ok(refused),
    }
}

async fn changed(
    state: &CommandState,
    headers: &HeaderMap,
    client: &Client,
    settings: &ClientSettings,
) -> Result<(), OAuthError> {
    let command = ClientCommand::ChangeSettings {
        settings: settings.clone(),
    };
    let committed = state
        .executor
        .execute::<Client>(
            &client.client_id,
            command,
            &recorded_as(headers, &client.client_id),
        )
        .await;
    match committed {
        Ok(_) => Ok(()),
        // Deleted or disabled since it was loaded: its token is dead.
        Err(ExecuteError::Rejected(ClientError::Disabled | ClientError::NotFound)) => {
            Err(OAuthError::bearer(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidToken,
                "the client no longer exists",
            ))
        }
        Err(ExecuteError::Rejected(why)) => {
            Err(invalid(ErrorCode::InvalidClientMetadata, why.to_string()))
        }
        Err(e) => Err(OAuthError::unavailable().because(e)),
    }
}

/// What a registration update may not do (RFC 7592 §5: the registration
/// access token is the client's own, weaker than an administrator): change
/// how the client authenticates or its keys, turn native, add scopes,
/// grants, redirect URIs or resources, subscribe to the revocation feed,
/// or drop a pushed-request requirement. Adding a
/// redirect URI would also let a leaked token divert codes that a
/// remembered consent lets through without a page.
fn widens(current: &ClientSettings, next: &ClientSettings) -> Option<&'static str> {
    fn within<T: PartialEq>(next: &[T], current: &[T]) -> bool {
        next.iter().all(|item| current.contains(item))
    }
    if next.uses_secret() != current.uses_secret() || next.public != current.public {
        Some("token_endpoint_auth_method")
    } else if next.jwks != current.jwks || next.jwks_uri != current.jwks_uri {
        // New keys are a new credential: an administrator's to give, as
        // a new secret is.
        Some("jwks")
    } else if next.application_type == ApplicationType::Native
        && current.application_type == ApplicationType::Web
    {
        // A native client's loopback redirect URIs take any port.
        Some("application_type")
    } else if !next.scopes.is_subset(&current.scopes) {
        Some("scope")
    } else if !within(&next.grant_types, &current.grant_types) {
        Some("grant_types")
    } else if !within(&next.redirect_uris, &current.redirect_uris) {
        Some("redirect_uris")
    } else if !within(
        &next.post_logout_redirect_uris,
        &current.post_logout_redirect_uris,
    ) {
        Some("post_logout_redirect_uris")
    } else if !within(&next.resources, &current.resources) {
        Some("resources")
    } else if next.revocation_feed && !current.revocation_feed {
        Some("revocation_feed")
    } else if next.backchannel_logout_uri.is_some()
        && next.backchannel_logout_uri != current.backchannel_logout_uri
    {
        // Somewhere new for Writ to call: an administrator's to give.
        Some("backchannel_logout_uri")
    } else if current.require_pushed_authorization_requests
        && !next.require_pushed_authorization_requests
    {
        Some("require_pushed_authorization_requests")
    } else if current.dpop_bound_access_tokens && !next.dpop_bound_access_tokens {
        Some("dpop_bound_access_tokens")
    } else if current.fapi2_security_profile && !next.fapi2_security_profile {
        Some("fapi2_security_profile")
    } else {
        None
    }
}

/// Removes `password` from the sent `grant_types`; whether it was there.
fn take_password_grant(sent: &mut Value) -> bool {
    let Some(grants) = sent.get_mut("grant_types").and_then(Value::as_array_mut) else {
        return false;
    };
    let before = grants.len();
    grants.retain(|grant| grant != "password");
    grants.len() != before
}

fn gone(headers: &HeaderMap) -> Response {
    bearer::refusal_by_hash(headers, None, bearer::REALM, "the client no longer exists")
        .unwrap_or_else(|| StatusCode::UNAUTHORIZED.into_response())
}

/// Deletes a client's registration (RFC 7592 §2.3): the client is
/// disabled, so its tokens stop working, and its registration access
/// token with it.
#[utoipa::path(
    delete,
    path = "/register/{client_id}",
    tag = tag::OAUTH,
    params(("client_id" = String, Path, description = "The registered client.")),
    security(("registration_access_token" = [])),
    responses(
        (status = 204, description = "Deleted: the client is disabled and its grants revoked."),
        (status = 401, description = "As for GET.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<CommandState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorized(&state, &headers, &client_id).await {
        return refused;
    }
    let command = ClientCommand::Disable {
        reason: "deleted through its registration access token (RFC 7592)".into(),
    };
    match state
        .executor
        .execute::<Client>(&client_id, command, &recorded_as(&headers, &client_id))
        .await
    {
        Ok(_) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            no_store(&mut response);
            response
        }
        // Deleted by a racing request in the meantime: gone either way.
        Err(ExecuteError::Rejected(_)) => gone(&headers),
        Err(e) => OAuthError::unavailable().because(e).into_response(),
    }
}
