//! The device code grant at `/token` (RFC 8628 §3.4, §3.5): the device
//! polls with its `device_code` until the person answers. Until then
//! nothing is recorded: an unanswered grant is told apart from the read
//! rows (no subject yet), as is a denied one (its grant revoked), so
//! polling writes no event, and a DPoP proof is accepted only once there
//! is something to bind it to.

use axum::response::Response;
use writ_domain::grant::{Grant, GrantCommand};
use writ_domain::values::{GrantType, SecretHash};
use writ_edge::{ErrorCode, OAuthError};
use writ_infra::tokens::TokenKind;

use crate::id_token;
use crate::issue::{self, polling, Subject};

pub async fn grant(grant: &super::Grant<'_>) -> Result<Response, OAuthError> {
    let super::Grant {
        state,
        client,
        form,
        metadata,
        proof,
    } = *grant;
    let presented = form.require("device_code")?;
    let record = issue::presented(state, presented, TokenKind::DeviceCode).await?;
    // Another client's code, or one already redeemed, answers like an
    // unknown one, before it can slow anyone down.
    if record.client_id != client.client_id || !record.is_unspent() {
        return Err(issue::invalid_grant());
    }
    if state.executor.services().now() >= record.expiry() {
        return Err(polling(
            ErrorCode::ExpiredToken,
            "the device code has expired; start again",
        ));
    }
    // Denied, or revoked before it was redeemed: told from the rows, so
    // that no DPoP proof is recorded for a grant that will mint nothing.
    if record.grant_revoked {
        return Err(polling(
            ErrorCode::AccessDenied,
            "the person denied the request, or it was revoked",
        ));
    }
    state.device.poll(&record.key)?;
    let Some(sub) = record.sub.clone() else {
        return Err(polling(
            ErrorCode::AuthorizationPending,
            "the person has not answered yet; poll again after the interval",
        ));
    };
    let with_refresh = client
        .settings
        .grant_types
        .contains(&GrantType::RefreshToken);
    let jkt = proof.key(state, client, None).await?;
    let prepared = issue::prepare(state, &client.settings, with_refresh, jkt)?;
    let command = GrantCommand::RedeemDeviceCode {
        client_id: client.client_id.clone(),
        device_code_hash: SecretHash(record.key.clone()),
        tokens: prepared.request.clone(),
    };
    let committed = state
        .executor
        .execute::<Grant>(&record.gid, command, metadata)
        .await
        .map_err(issue::refused)?;
    let issued = issue::body(
        state,
        Subject {
            client_id: &client.client_id,
            sub: Some(&sub),
            audience: &record.audience,
            gid: &record.gid,
            act: None,
        },
        &committed.events,
        prepared,
    )?;
    let mut body = issued.body.clone();
    if issued.scopes.contains("openid") {
        let at = id_token::At::CodeExchange;
        let token = id_token::sign(state, client, &sub, &committed.state, &issued, at).await?;
        body["id_token"] = serde_json::Value::String(token);
    }
    Ok(issue::send(body))
}
