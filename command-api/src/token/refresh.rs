//! The refresh token grant (RFC 6749 §6): rotation on every use, and a
//! reused rotated token revokes its family (RFC 9700 §4.14.2).

use axum::response::Response;
use writ_domain::grant::{Grant, GrantCommand, GrantEvent};
use writ_domain::values::ScopeSet;
use writ_edge::{Form, OAuthError};
use writ_infra::tokens::TokenKind;

use crate::issue::{self, Subject};

/// RFC 8707 §2.2: `resource` at a refresh or code exchange asks for an
/// access token for fewer resources than the grant holds; the grant's
/// aggregate refuses one it does not hold (`invalid_target`).
pub fn narrowed(form: &Form) -> Result<Option<Vec<String>>, OAuthError> {
    let requested = form.all("resource");
    if requested.is_empty() {
        return Ok(None);
    }
    Ok(crate::audience::well_formed(requested).map(Some)?)
}

pub async fn grant(grant: &super::Grant<'_>) -> Result<Response, OAuthError> {
    let super::Grant {
        state,
        client,
        form,
        metadata,
        proof,
    } = *grant;
    let presented = form.require("refresh_token")?;
    // Before the lookup, as for a code: the answer must not tell a real
    // token from an unknown one.
    let narrowed = narrowed(form)?;
    let scopes = form
        .get("scope")
        .map(ScopeSet::parse)
        .transpose()
        .map_err(|_| {
            OAuthError::invalid_scope("scope contains characters RFC 6749 does not allow")
        })?;
    let record = issue::presented(state, presented, TokenKind::Refresh).await?;
    let gid = record.gid.clone();
    let hash = record.key.clone();
    let jkt = proof.key(state, client, record.jkt.as_deref()).await?;
    // FAPI 2.0 §5.3.2.1: its refresh tokens are not rotated; the one
    // presented stays the family's, bound to the client and its DPoP key.
    let rotate = !client.settings.fapi2(state.fapi2);
    let mut prepared = issue::prepare(state, &client.settings, rotate, jkt)?;
    prepared.request.audience = narrowed.clone();
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
    let issued = issue::body(
        state,
        Subject {
            client_id: &client.client_id,
            sub: record.sub.as_deref(),
            audience: narrowed.as_deref().unwrap_or(&record.audience),
            gid: &gid,
            act: None,
        },
        &committed.events,
        prepared,
    )?;
    let mut body = issued.body.clone();
    // OpenID Connect Core §12.2: a grant that began with a sign-in gets a
    // fresh id_token for the same person and sign-in.
    if let (Some(sub), true, true) = (
        record.sub.as_deref(),
        issued.scopes.contains("openid"),
        committed.state.authentication.is_some(),
    ) {
        let at = crate::id_token::At::Refresh;
        let token =
            crate::id_token::sign(state, client, sub, &committed.state, &issued, at).await?;
        body["id_token"] = serde_json::Value::String(token);
    }
    Ok(issue::send(body))
}
