//! The signed-in browser session: found by the SHA-256 of its cookie in
//! the inline `sessions` row, started or renewed at sign-in, ended at
//! logout together with the grants issued in it.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use writ_domain::session::{Session, SessionCommand};
use writ_infra::crypto::{random_token, sha256_hex};
use writ_store::executor::Stream;
use writ_store::inline::timestamp;
use writ_store::views::sessions;
use writ_store::{ExecuteError, Metadata};

use super::state::{cookie, SESSION_COOKIE};
use crate::CommandState;

#[derive(Debug, Clone)]
pub struct LiveSession {
    /// The session's stream id: the SHA-256 of its cookie.
    pub sid: String,
    pub sub: String,
    pub auth_time: DateTime<Utc>,
}

#[derive(Debug)]
pub struct Unavailable;

/// The live session this browser presents, if any: not ended, not expired,
/// and its account still enabled.
pub async fn current(
    state: &CommandState,
    headers: &HeaderMap,
) -> Result<Option<LiveSession>, Unavailable> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let sid = sha256_hex(token.as_bytes());
    let session = sessions::find(state.store.db(), &sid)
        .await
        .map_err(|_| Unavailable)?;
    let Some(session) = session else {
        return Ok(None);
    };
    let now = timestamp(&state.executor.services().now());
    let auth_time = DateTime::parse_from_rfc3339(&session.auth_time)
        .ok()
        .map(|t| t.with_timezone(&Utc));
    Ok(match auth_time {
        Some(auth_time) if session.is_live_at(&now) => Some(LiveSession {
            sid,
            sub: session.sub,
            auth_time,
        }),
        _ => None,
    })
}

/// After a successful sign-in: renews the browser's live session of the
/// same person, or starts a new one (ending another person's). Returns the
/// session and, for a new one, the cookie to set.
pub async fn sign_in(
    state: &CommandState,
    existing: Option<LiveSession>,
    sub: &str,
    metadata: &Metadata,
) -> Result<(LiveSession, Option<String>), Unavailable> {
    let ttl_secs = state.browser.session_ttl.as_secs().max(1);
    if let Some(existing) = existing {
        if existing.sub == sub {
            let renewed = state
                .executor
                .execute::<Session>(
                    &existing.sid,
                    SessionCommand::Renew {
                        sub: sub.to_owned(),
                        ttl_secs,
                    },
                    metadata,
                )
                .await
                .map_err(|_| Unavailable)?;
            let auth_time = renewed.state.auth_time.ok_or(Unavailable)?;
            return Ok((
                LiveSession {
                    auth_time,
                    ..existing
                },
                None,
            ));
        }
        // Another person signs in here: the old session ends, but its
        // grants are that person's and stay live.
        end_session(state, &existing, "replaced by another sign-in", metadata).await?;
    }
    let token = random_token();
    let sid = sha256_hex(token.as_bytes());
    let started = state
        .executor
        .execute_with::<Session>(
            &sid,
            SessionCommand::Start {
                sub: sub.to_owned(),
                ttl_secs,
            },
            metadata,
            Vec::new(),
            Stream::New,
        )
        .await
        .map_err(|_| Unavailable)?;
    let auth_time = started.state.auth_time.ok_or(Unavailable)?;
    Ok((
        LiveSession {
            sid,
            sub: sub.to_owned(),
            auth_time,
        },
        Some(token),
    ))
}

/// Ends the session and revokes every grant issued in it, before the
/// caller answers (RP-Initiated Logout; R31).
pub async fn end(
    state: &CommandState,
    session: &LiveSession,
    reason: &str,
    metadata: &Metadata,
) -> Result<(), Unavailable> {
    let by = format!("user:{}", session.sub);
    crate::sign_out::end_session(
        &state.executor,
        &state.store,
        &session.sid,
        &by,
        reason,
        metadata,
    )
    .await
    .map(drop)
    .map_err(|_| Unavailable)
}

/// Ends the session alone: a new sign-in replaces it, and what was
/// granted in it stands.
async fn end_session(
    state: &CommandState,
    session: &LiveSession,
    reason: &str,
    metadata: &Metadata,
) -> Result<(), Unavailable> {
    let command = SessionCommand::End {
        by: format!("user:{}", session.sub),
        reason: reason.to_owned(),
    };
    match state
        .executor
        .execute::<Session>(&session.sid, command, metadata)
        .await
    {
        Ok(_) | Err(ExecuteError::Rejected(_)) => Ok(()),
        Err(_) => Err(Unavailable),
    }
}

impl LiveSession {
    /// The signed-in person's username for a page, or `otherwise` when it
    /// cannot be read (a forgotten account, a store that did not answer).
    pub async fn username(&self, state: &CommandState, otherwise: &str) -> String {
        writ_infra::claims::username(&state.store, &state.key_ring, &self.sub)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| otherwise.to_owned())
    }
}
