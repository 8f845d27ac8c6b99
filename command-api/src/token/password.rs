//! The resource owner password grant: legacy (RFC 9700 §2.4 says do not
//! use it), off unless a client is created with it. The outcome of every
//! attempt on a known account is recorded in the account's login stream.

use axum::response::Response;
use writ_domain::grant::GrantCommand;
use writ_edge::OAuthError;

use crate::audience;
use crate::credentials::{self, Checked};
use crate::issue::{self, new_gid, Subject};

const FAILED: &str = "the username or password is wrong";

pub async fn grant(
    grant: &super::Grant<'_>,
    client_address: Option<std::net::IpAddr>,
) -> Result<Response, OAuthError> {
    let super::Grant {
        state,
        client,
        form,
        metadata,
        proof,
    } = *grant;
    let username = form.require("username")?;
    let password = form.require("password")?.to_owned();
    let scopes = audience::scopes(&client.settings, form.get("scope"))?;
    let audience = audience::resolve(
        &client.client_id,
        &client.settings,
        form.all("resource"),
        &state.allowed_resources,
    )?;
    let sub = match credentials::check(state, username, password, client_address, metadata).await {
        Ok(Checked::Verified(sub)) => sub,
        Ok(Checked::Failed) => return Err(OAuthError::invalid_grant(FAILED)),
        Ok(Checked::Throttled(wait)) => return Err(OAuthError::throttled(wait)),
        Err(_) => return Err(OAuthError::unavailable()),
    };
    let with_refresh = client
        .settings
        .grant_types
        .contains(&writ_domain::values::GrantType::RefreshToken);
    let jkt = proof.key(state, client, None).await?;
    let prepared = issue::prepare(state, &client.settings, with_refresh, jkt)?;
    let gid = new_gid();
    let subject = Subject {
        client_id: &client.client_id,
        sub: Some(&sub),
        audience: &audience,
        gid: &gid,
        act: None,
    };
    issue::start_grant(state, metadata, subject, prepared, |tokens| {
        GrantCommand::GrantByPassword {
            gid: gid.clone(),
            client_id: client.client_id.clone(),
            sub: sub.clone(),
            scopes,
            audience: audience.clone(),
            tokens,
        }
    })
    .await
}
