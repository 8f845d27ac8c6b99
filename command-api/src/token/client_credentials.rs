//! The client credentials grant (RFC 6749 §4.4): a confidential client
//! asking for a token of its own, with no person and no refresh token.

use axum::response::Response;
use writ_domain::grant::GrantCommand;
use writ_edge::OAuthError;

use crate::audience;
use crate::issue::{self, new_gid, Subject};

pub async fn grant(grant: &super::Grant<'_>) -> Result<Response, OAuthError> {
    let super::Grant {
        state,
        client,
        form,
        metadata,
        proof,
    } = *grant;
    // R36: a public client has nothing to prove it is itself.
    if client.settings.public {
        return Err(OAuthError::unauthorized_client(
            "public clients may not use client_credentials",
        ));
    }
    let scopes = audience::scopes(&client.settings, form.get("scope"))?;
    let audience = audience::resolve(
        &client.client_id,
        &client.settings,
        form.all("resource"),
        &state.allowed_resources,
    )?;
    // RFC 6749 §4.4.3: no refresh token for client credentials.
    let jkt = proof.key(state, client, None).await?;
    let prepared = issue::prepare(state, &client.settings, false, jkt)?;
    let gid = new_gid();
    let subject = Subject {
        client_id: &client.client_id,
        sub: None,
        audience: &audience,
        gid: &gid,
        act: None,
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
