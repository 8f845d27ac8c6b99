//! Checking a username and password, for the sign-in page and the legacy
//! password grant alike: throttled per account (and per client IP when
//! there is one) before any hash is computed, argon2id against a decoy for
//! unknown names so timing does not tell which accounts exist, and the
//! outcome for a known account recorded in its daily login stream.

use std::sync::OnceLock;

use writ_domain::login::{self, LoginCommand, LoginDay};
use writ_domain::values::Sealed;
use writ_infra::crypto::{hash_password, verify_password};
use writ_infra::personal::{account_id, normalize_username, SubjectKey};
use writ_infra::store::statement::Statement;
use writ_infra::store::RowExt;
use writ_infra::{ExecuteError, Metadata};

use crate::CommandState;

pub enum Checked {
    /// The password is right; the account's `sub`.
    Verified(String),
    Failed,
    /// Too many failures; retry after this many seconds.
    Throttled(u64),
}

#[derive(Debug)]
pub struct Unavailable;

fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password").unwrap_or_default())
}

struct Candidate {
    sub: String,
    account_id: String,
    phc: Option<String>,
}

pub async fn check(
    state: &CommandState,
    username: &str,
    password: String,
    client_ip: Option<&str>,
    metadata: &Metadata,
) -> Result<Checked, Unavailable> {
    let ip_key = client_ip.map(|ip| format!("ip:{ip}"));
    if let Some(key) = &ip_key {
        if let Err(wait) = state.browser.ip_throttle.check(key) {
            return Ok(Checked::Throttled(wait));
        }
    }
    let candidate = find(state, username).await?;
    let account_key = candidate
        .as_ref()
        .map(|c| format!("account:{}", c.account_id));
    if let Some(key) = &account_key {
        if let Err(wait) = state.throttle.check(key) {
            return Ok(Checked::Throttled(wait));
        }
    }
    let phc = candidate
        .as_ref()
        .and_then(|c| c.phc.clone())
        .unwrap_or_else(|| decoy_hash().to_owned());
    let verified = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    let succeeded = verified && candidate.as_ref().is_some_and(|c| c.phc.is_some());
    if let Some(candidate) = &candidate {
        record_outcome(state, candidate, succeeded, metadata).await?;
    }
    if !succeeded {
        if let Some(key) = &account_key {
            state.throttle.record_failure(key);
        }
        if let Some(key) = &ip_key {
            state.browser.ip_throttle.record_failure(key);
        }
        return Ok(Checked::Failed);
    }
    Ok(candidate.map_or(Checked::Failed, |c| Checked::Verified(c.sub)))
}

/// The account a username names, if it exists and is enabled; `phc` is
/// `None` when its password cannot be read (forgotten subject key).
async fn find(state: &CommandState, username: &str) -> Result<Option<Candidate>, Unavailable> {
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
        .map_err(|_| Unavailable)?;
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
) -> Result<(), Unavailable> {
    let today = state.executor.services().now().date_naive();
    let stream = login::stream_id(&candidate.account_id, today);
    let command = LoginCommand::RecordOutcome {
        sub: candidate.sub.clone(),
        succeeded,
    };
    match state
        .executor
        .execute::<LoginDay>(&stream, command, metadata)
        .await
    {
        Ok(_) | Err(ExecuteError::Rejected(_)) => Ok(()),
        Err(_) => Err(Unavailable),
    }
}
