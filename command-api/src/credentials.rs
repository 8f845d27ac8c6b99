//! Checking a username and password, for the sign-in page and the legacy
//! password grant alike: argon2id against a decoy for unknown names so
//! timing does not tell which accounts exist, and the outcome for a known
//! account recorded in its daily login stream.
//!
//! Throttling (R73, ADR 0011) never refuses a right password:
//! - failures are counted per username under its keyed hash, the same for
//!   names that exist and names that do not, so the count tells nothing;
//!   past the limit a wrong password is answered 429 with `Retry-After`;
//! - failures are counted per client address too, but behind a proxy many
//!   people share one, so that count changes no answer: past its limit
//!   each attempt from the address waits, at most a second.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use writ_domain::login::{self, LoginCommand, LoginDay};
use writ_domain::values::Sealed;
use writ_infra::crypto::{hash_password, verify_password};
use writ_infra::personal::{account_id, normalize_username, SubjectKey};
use writ_store::views::accounts::{self, AccountRow};
use writ_store::{ExecuteError, Metadata};

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

/// Each argon2id verification holds 19 MiB (the crate's default cost) on a
/// blocking thread, and more of them at once than there are cores finish
/// no sooner. Unbounded, a burst of sign-ins multiplied that memory by the
/// blocking pool: the soak saw the command API swing from 40 to 360 MB.
static VERIFICATIONS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    Arc::new(Semaphore::new(cores))
});

/// Runs `work` on a blocking thread once `places` has room; the place is
/// held until the work ends, even if the caller has gone.
async fn bounded_blocking<T: Send + 'static>(
    places: &Arc<Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let place = places.clone().acquire_owned().await.ok()?;
    tokio::task::spawn_blocking(move || {
        let done = work();
        drop(place);
        done
    })
    .await
    .ok()
}

struct Candidate {
    sub: String,
    account_id: String,
    phc: Option<String>,
}

/// Past the address limit, each failure beyond it adds this much wait, up
/// to [`MAX_ADDRESS_DELAY`].
const ADDRESS_DELAY_STEP: Duration = Duration::from_millis(100);
const MAX_ADDRESS_DELAY: Duration = Duration::from_secs(1);

pub async fn check(
    state: &CommandState,
    username: &str,
    password: String,
    client_address: Option<IpAddr>,
    metadata: &Metadata,
) -> Result<Checked, Unavailable> {
    let address_key = client_address.map(|ip| ip.to_string());
    if let Some(key) = &address_key {
        tokio::time::sleep(address_delay(&state.browser.ip_throttle, key)).await;
    }
    // A name that does not normalise is counted under its raw form, so it
    // is throttled like any other unknown name.
    let name_key = account_id(
        &state.key_ring,
        &normalize_username(username).unwrap_or_else(|_| username.to_owned()),
    );
    let candidate = find(state, username).await?;
    let phc = candidate.as_ref().and_then(|c| c.phc.clone());
    // The decoy is hashed on first use, inside the bound like any hash.
    let verified = bounded_blocking(&VERIFICATIONS, move || {
        verify_password(&password, phc.as_deref().unwrap_or_else(|| decoy_hash()))
    })
    .await
    // A verification that panicked says nothing about the password.
    .ok_or(Unavailable)?;
    let succeeded = verified && candidate.as_ref().is_some_and(|c| c.phc.is_some());
    if let Some(candidate) = &candidate {
        record_outcome(state, candidate, succeeded, metadata).await?;
    }
    if !succeeded {
        let over_limit = state.account_throttle.check(&name_key);
        state.account_throttle.record_failure(&name_key);
        if let Some(key) = &address_key {
            state.browser.ip_throttle.record_failure(key);
        }
        return Ok(match over_limit {
            Err(wait) => Checked::Throttled(wait),
            Ok(()) => Checked::Failed,
        });
    }
    Ok(candidate.map_or(Checked::Failed, |c| Checked::Verified(c.sub)))
}

fn address_delay(throttle: &writ_edge::Throttle, key: &str) -> Duration {
    let past_limit = (throttle.failures(key) + 1).saturating_sub(throttle.limit());
    (ADDRESS_DELAY_STEP * past_limit).min(MAX_ADDRESS_DELAY)
}

/// The account a username names, if it exists and is enabled; `phc` is
/// `None` when its password cannot be read (forgotten subject key).
async fn find(state: &CommandState, username: &str) -> Result<Option<Candidate>, Unavailable> {
    let Ok(normalised) = normalize_username(username) else {
        return Ok(None);
    };
    let account_id = account_id(&state.key_ring, &normalised);
    let account = accounts::by_account_id(state.store.db(), &account_id)
        .await
        .map_err(|_| Unavailable)?;
    let Some(account) = account.filter(AccountRow::is_active) else {
        return Ok(None);
    };
    let phc = account
        .wrapped_key
        .as_deref()
        .and_then(|wrapped| SubjectKey::unwrap(&account.sub, wrapped, &state.key_ring).ok())
        .and_then(|key| key.open("password_hash", &Sealed(account.password_hash.clone())));
    let sub = account.sub;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_verifications_run_at_once_than_there_are_places() {
        let places = Arc::new(Semaphore::new(2));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let calls = (0..16).map(|n| {
            let (running, most) = (running.clone(), most.clone());
            bounded_blocking(&places, move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
                n
            })
        });
        let done: Vec<Option<usize>> = futures::future::join_all(calls).await;
        assert_eq!(
            done,
            (0..16).map(Some).collect::<Vec<_>>(),
            "every call answered"
        );
        assert_eq!(most.load(Ordering::SeqCst), 2, "two at a time, never more");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_gives_up_does_not_free_the_place_of_work_still_running() {
        let places = Arc::new(Semaphore::new(1));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let abandoned = bounded_blocking(&places, move || {
            let _ = released.recv();
        });
        let _ = tokio::time::timeout(Duration::from_millis(50), abandoned).await;
        assert_eq!(places.available_permits(), 0, "the work still holds it");
        let _ = release.send(());
        let next =
            tokio::time::timeout(Duration::from_secs(5), bounded_blocking(&places, || 7)).await;
        assert_eq!(next.ok().flatten(), Some(7));
    }
}
