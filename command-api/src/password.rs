//! The resource owner password grant: legacy (RFC 9700 §2.4 says do not
//! use it), off unless a client is created with it. The outcome of every
//! attempt on a known account is recorded in the account's login stream.

use std::sync::OnceLock;

use axum::response::Response;
use chrono::Utc;
use writ_domain::grant::GrantCommand;
use writ_domain::login::{self, LoginCommand, LoginDay};
use writ_domain::values::Sealed;
use writ_infra::crypto::{hash_password, verify_password};
use writ_infra::http::{AuthenticatedClient, Form, OAuthError};
use writ_infra::personal::{account_id, normalize_username, SubjectKey};
use writ_infra::store::statement::Statement;
use writ_infra::store::RowExt;
use writ_infra::Metadata;

use crate::issue::{self, Subject};
use crate::token::new_gid;
use crate::{audience, CommandState};

const FAILED: &str = "the username or password is wrong";

/// Unknown usernames still pay for one argon2 verification, so timing does
/// not tell which accounts exist.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password").unwrap_or_default())
}

struct Candidate {
    sub: String,
    account_id: String,
    phc: Option<String>,
}

pub async fn grant(
    state: &CommandState,
    client: &AuthenticatedClient,
    form: &Form,
    metadata: &Metadata,
) -> Result<Response, OAuthError> {
    let username = form.require("username")?;
    let password = form.require("password")?.to_owned();
    let scopes = audience::scopes(&client.settings, form.get("scope"))?;
    let audience = audience::resolve(&client.client_id, &client.settings, form.all("resource"))?;
    let candidate = find(state, username).await?;
    let throttle_key = candidate
        .as_ref()
        .map(|c| format!("account:{}", c.account_id));
    if let Some(key) = &throttle_key {
        state.throttle.check(key).map_err(OAuthError::throttled)?;
    }
    let phc = candidate
        .as_ref()
        .and_then(|c| c.phc.clone())
        .unwrap_or_else(|| decoy_hash().to_owned());
    let verified = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    let Some(candidate) = candidate else {
        return Err(OAuthError::invalid_grant(FAILED));
    };
    let succeeded = verified && candidate.phc.is_some();
    record_outcome(state, &candidate, succeeded, metadata).await?;
    if !succeeded {
        if let Some(key) = &throttle_key {
            state.throttle.record_failure(key);
        }
        return Err(OAuthError::invalid_grant(FAILED));
    }
    let with_refresh = client
        .settings
        .grant_types
        .contains(&writ_domain::values::GrantType::RefreshToken);
    let prepared = issue::prepare(&client.settings, with_refresh, state.refresh_token_idle_ttl);
    let gid = new_gid();
    let subject = Subject {
        client_id: &client.client_id,
        sub: Some(&candidate.sub),
        audience: &audience,
        gid: &gid,
    };
    issue::start_grant(state, metadata, subject, prepared, |tokens| {
        GrantCommand::GrantByPassword {
            gid: gid.clone(),
            client_id: client.client_id.clone(),
            sub: candidate.sub.clone(),
            scopes,
            audience: audience.clone(),
            tokens,
        }
    })
    .await
}

/// The account a username names, if it exists and is enabled; `phc` is
/// `None` when its password cannot be read (forgotten subject key).
async fn find(state: &CommandState, username: &str) -> Result<Option<Candidate>, OAuthError> {
    let Ok(normalised) = normalize_username(username) else {
        return Ok(None);
    };
    let account_id = account_id(&state.key_ring, &normalised);
    let row = state
        .store
        .db()
        .fetch_optional(
            &Statement::new(
                "SELECT a.sub, a.password_hash, a.status, k.wrapped_key FROM usernames u \
                 JOIN accounts a ON a.sub = u.sub LEFT JOIN subject_keys k ON k.sub = a.sub \
                 WHERE u.account_id = $1",
            )
            .text(account_id.clone()),
        )
        .await
        .map_err(|_| OAuthError::unavailable())?;
    let Some(row) = row.filter(|r| r.text("status").as_deref() == Some("active")) else {
        return Ok(None);
    };
    let sub = row.text("sub").unwrap_or_default();
    let phc = row
        .text("wrapped_key")
        .and_then(|wrapped| SubjectKey::unwrap(&sub, &wrapped, &state.key_ring).ok())
        .and_then(|key| key.open("password_hash", &Sealed(row.text("password_hash")?)));
    Ok(Some(Candidate {
        sub,
        account_id,
        phc,
    }))
}

async fn record_outcome(
    state: &CommandState,
    candidate: &Candidate,
    succeeded: bool,
    metadata: &Metadata,
) -> Result<(), OAuthError> {
    let stream = login::stream_id(&candidate.account_id, Utc::now().date_naive());
    let command = LoginCommand::RecordOutcome {
        sub: candidate.sub.clone(),
        succeeded,
    };
    match state
        .executor
        .execute::<LoginDay>(&stream, command, metadata)
        .await
    {
        Ok(_) => Ok(()),
        Err(writ_infra::ExecuteError::Rejected(_)) => Ok(()),
        Err(_) => Err(OAuthError::unavailable()),
    }
}
