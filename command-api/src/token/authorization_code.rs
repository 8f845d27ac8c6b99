//! The authorization code grant at `/token` (RFC 6749 §4.1.3, RFC 7636
//! §4.6): the code is found by its hash, and the grant's aggregate decides
//! redemption, replay (which revokes the grant, the winner's tokens
//! included) and PKCE failure (which burns the code). Both outcomes are
//! committed before the `invalid_grant` answer leaves.

use axum::response::Response;
use writ_domain::grant::{Grant, GrantCommand, GrantEvent};
use writ_domain::values::{GrantType, RedirectUri, SecretHash};
use writ_edge::OAuthError;
use writ_infra::tokens::TokenKind;

use crate::id_token;
use crate::issue::{self, Subject};

pub async fn grant(grant: &super::Grant<'_>) -> Result<Response, OAuthError> {
    let super::Grant {
        state,
        client,
        form,
        metadata,
        proof,
    } = *grant;
    let code = form.require("code")?;
    let redirect_uri = form
        .get("redirect_uri")
        .map(RedirectUri::parse)
        .transpose()
        .map_err(|_| {
            OAuthError::invalid_grant("redirect_uri differs from the authorization request's")
        })?;
    // Checked before the code is looked up, so that a malformed resource
    // answers alike for a real code and an unknown one.
    let narrowed = super::refresh::narrowed(form)?;
    let record = issue::presented(state, code, TokenKind::Code).await?;
    let with_refresh = client
        .settings
        .grant_types
        .contains(&GrantType::RefreshToken);
    let jkt = proof.key(state, client, record.jkt.as_deref()).await?;
    let mut prepared = issue::prepare(state, &client.settings, with_refresh, jkt)?;
    prepared.request.audience = narrowed.clone();
    let command = GrantCommand::RedeemCode {
        client_id: client.client_id.clone(),
        code_hash: SecretHash(record.key.clone()),
        redirect_uri,
        verifier: form.get("code_verifier").map(str::to_owned),
        tokens: prepared.request.clone(),
    };
    let committed = state
        .executor
        .execute::<Grant>(&record.gid, command, metadata)
        .await
        .map_err(issue::refused)?;
    // Replay and a failed PKCE check answer like an unknown code, or the
    // answer would confirm a stolen code is real.
    if committed.events.iter().any(|event| {
        matches!(
            event.payload,
            GrantEvent::CodeReplayDetected { .. } | GrantEvent::CodeBurned { .. }
        )
    }) {
        return Err(issue::invalid_grant());
    }
    let issued = issue::body(
        state,
        Subject {
            client_id: &client.client_id,
            sub: record.sub.as_deref(),
            audience: narrowed.as_deref().unwrap_or(&record.audience),
            gid: &record.gid,
            act: None,
        },
        &committed.events,
        prepared,
    )?;
    let mut body = issued.body.clone();
    if issued.scopes.contains("openid") {
        let sub = record.sub.as_deref().unwrap_or_default();
        let at = id_token::At::CodeExchange;
        let token = id_token::sign(state, client, sub, &committed.state, &issued, at).await?;
        body["id_token"] = serde_json::Value::String(token);
    }
    Ok(issue::send(body))
}
