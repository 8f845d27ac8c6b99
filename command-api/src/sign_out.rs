//! Ending a browser session: the session's `SessionEnded`, then the
//! revocation of every grant issued in it that still stands (R31), before
//! the caller answers. Logout does it for the person's own session; `writ
//! user sign-out` for every live session of an account.

use writ_domain::grant::{Grant, GrantCommand};
use writ_domain::session::{Session, SessionCommand};
use writ_store::views::{grants, sessions};
use writ_store::{ExecuteError, Executor, Metadata, Store};

/// The store did not answer, or did not confirm a commit.
#[derive(Debug)]
pub struct Unavailable;

/// Ends session `sid` as `by` and revokes its standing grants; returns
/// how many it revoked. A session already ended, or a grant revoked
/// meanwhile, is no failure: the outcome is the one asked for.
pub async fn end_session(
    executor: &Executor,
    store: &Store,
    sid: &str,
    by: &str,
    reason: &str,
    metadata: &Metadata,
) -> Result<usize, Unavailable> {
    let command = SessionCommand::End {
        by: by.to_owned(),
        reason: reason.to_owned(),
    };
    match executor.execute::<Session>(sid, command, metadata).await {
        Ok(_) | Err(ExecuteError::Rejected(_)) => {}
        Err(_) => return Err(Unavailable),
    }
    let standing = grants::standing_in_session(store.db(), sid)
        .await
        .map_err(|_| Unavailable)?;
    let mut revoked = 0;
    for gid in standing {
        let command = GrantCommand::Revoke {
            by: by.to_owned(),
            reason: reason.to_owned(),
        };
        match executor.execute::<Grant>(&gid, command, metadata).await {
            Ok(_) => revoked += 1,
            // Revoked meanwhile (by a replay, a policy): nothing to add.
            Err(ExecuteError::Rejected(_)) => {}
            Err(_) => return Err(Unavailable),
        }
    }
    Ok(revoked)
}

/// Ends every live session of `sub`; returns how many sessions and grants.
pub async fn sign_out(
    executor: &Executor,
    store: &Store,
    sub: &str,
    by: &str,
    metadata: &Metadata,
) -> Result<(usize, usize), Unavailable> {
    let live = sessions::live_of(store.db(), sub)
        .await
        .map_err(|_| Unavailable)?;
    let mut revoked = 0;
    for sid in &live {
        revoked += end_session(executor, store, sid, by, "sign_out", metadata).await?;
    }
    Ok((live.len(), revoked))
}
