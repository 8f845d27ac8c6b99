//! `POST /token` (RFC 6749 §3.2): authenticate the client, check that it
//! may use the grant type, then run the grant's command. A response leaves
//! only after its events, and the inline rows introspection reads, are
//! committed.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use writ_domain::grant::{Grant, GrantCommand, GrantEvent};
use writ_domain::values::{GrantType, ScopeSet};
use writ_edge::{form, AuthenticatedClient, ClientAddress, Form, OAuthError};
use writ_infra::tokens;
use writ_infra::Metadata;

use crate::issue::{self, Subject};
use crate::{audience, authorization_code, password, CommandState};

pub async fn token(
    State(state): State<CommandState>,
    address: ClientAddress,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let (state, headers) = (&state, &headers);
    let form = form::read(headers, body).await?;
    let grant_type = form.require("grant_type")?;
    let client = writ_edge::authenticate(
        &state.store,
        &state.throttle,
        address.0,
        headers,
        &form,
        true,
    )
    .await?;
    let Some(grant_type) = GrantType::parse(grant_type) else {
        return Err(OAuthError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type is not one Writ supports here",
        ));
    };
    if !client.settings.grant_types.contains(&grant_type) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client may not use the {} grant",
            grant_type.as_str()
        )));
    }
    let metadata = Metadata {
        actor: format!("client:{}", client.client_id),
        request_id: request_id(headers),
        client_id: Some(client.client_id.clone()),
    };
    match grant_type {
        GrantType::ClientCredentials => client_credentials(state, &client, &form, &metadata).await,
        GrantType::RefreshToken => refresh(state, &client, &form, &metadata).await,
        GrantType::Password => password::grant(state, &client, &form, &metadata, address.0).await,
        GrantType::AuthorizationCode => {
            authorization_code::grant(state, &client, &form, &metadata).await
        }
    }
}

pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub fn new_gid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn client_credentials(
    state: &CommandState,
    client: &AuthenticatedClient,
    form: &Form,
    metadata: &Metadata,
) -> Result<Response, OAuthError> {
    // R36: a public client has nothing to prove it is itself.
    if client.settings.public {
        return Err(OAuthError::unauthorized_client(
            "public clients may not use client_credentials",
        ));
    }
    let scopes = audience::scopes(&client.settings, form.get("scope"))?;
    let audience = audience::resolve(&client.client_id, &client.settings, form.all("resource"))?;
    // RFC 6749 §4.4.3: no refresh token for client credentials.
    let prepared = issue::prepare(&client.settings, false, state.refresh_token_idle_ttl);
    let gid = new_gid();
    let subject = Subject {
        client_id: &client.client_id,
        sub: None,
        audience: &audience,
        gid: &gid,
    };
    issue::start_grant(state, metadata, subject, prepared, |tokens| {
        GrantCommand::GrantClientCredentials {
            gid: gid.clone(),
            client_id: client.client_id.clone(),
            scopes,
            audience: audience.clone(),
            tokens,
        }
    })
    .await
}

async fn refresh(
    state: &CommandState,
    client: &AuthenticatedClient,
    form: &Form,
    metadata: &Metadata,
) -> Result<Response, OAuthError> {
    let presented = form.require("refresh_token")?;
    let record = tokens::find(&state.store, &state.keys, presented)
        .await
        .map_err(|_| OAuthError::unavailable())?
        .filter(|record| record.kind == tokens::Kind::Refresh)
        .ok_or_else(issue::invalid_grant)?;
    // The aggregate knows only its own stream: a disabled client or
    // account, or a password changed since the grant began, is checked
    // here against the inline rows (the policy revokes the grant soon after).
    if !record.holder_is_live() {
        return Err(issue::invalid_grant());
    }
    let gid = record.gid.clone();
    let hash = record.key.clone();
    let scopes = form
        .get("scope")
        .map(ScopeSet::parse)
        .transpose()
        .map_err(|_| {
            OAuthError::invalid_scope("scope contains characters RFC 6749 does not allow")
        })?;
    let prepared = issue::prepare(&client.settings, true, state.refresh_token_idle_ttl);
    let command = GrantCommand::Refresh {
        client_id: client.client_id.clone(),
        token_hash: writ_domain::values::SecretHash(hash),
        scopes,
        tokens: prepared.request.clone(),
    };
    let committed = state
        .executor
        .execute::<Grant>(&gid, command, metadata)
        .await
        .map_err(issue::refused)?;
    // RFC 6749 §10.4: reuse of a rotated token revoked the family; the
    // refusal leaves only after that revocation is committed, and reads
    // like any other so a thief learns nothing from it.
    if committed
        .events
        .iter()
        .any(|e| matches!(e.payload, GrantEvent::RefreshTokenReuseDetected { .. }))
    {
        return Err(issue::invalid_grant());
    }
    issue::respond(
        state,
        Subject {
            client_id: &client.client_id,
            sub: record.sub.as_deref(),
            audience: &record.audience,
            gid: &gid,
        },
        &committed.events,
        prepared,
    )
}
