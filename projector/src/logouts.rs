//! Which relying parties hear of a browser session's end (OpenID Connect
//! Back-Channel Logout 1.0 §2.7): every client that was given an id_token
//! in it and registered a `backchannel_logout_uri`. A session ends by
//! logout, `writ user sign-out` or a new sign-in over it; disabling the
//! account ends every session it had. Each (session, client) becomes one
//! `BackchannelLogout` stream, the outbox entry the deliverer works from;
//! scheduling one twice (the policy replayed after a crash, or a session
//! that ended and whose account was then disabled) is refused and harmless.

use std::time::Duration;

use cqrs_es::Aggregate;
use writ_domain::account::{Account, AccountEvent};
use writ_domain::backchannel_logout::{BackchannelLogout, BackchannelLogoutCommand};
use writ_domain::session::{Session, SessionEvent};
use writ_infra::crypto::sha256_hex;
use writ_store::executor::Stream;
use writ_store::views::{clients, grants, sessions};
use writ_store::{ExecuteError, Executor, Metadata, Store, StoredEvent};

use crate::ProjectorError;

/// The event types that end sessions.
pub const TRIGGERS: &[&str] = &["SessionEnded", "AccountDisabled"];

/// The sessions `cause` ended, their person, and why.
async fn ended(
    store: &Store,
    cause: &StoredEvent,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    let db = store.db();
    match cause.aggregate_type.as_str() {
        Session::TYPE => {
            let Ok(SessionEvent::SessionEnded { reason, .. }) =
                serde_json::from_value(cause.payload.clone())
            else {
                return Ok(Vec::new());
            };
            let sid = cause.aggregate_id.clone();
            Ok(sessions::find(db, &sid)
                .await?
                .map(|session| vec![(sid, session.sub, reason)])
                .unwrap_or_default())
        }
        Account::TYPE => {
            let Ok(AccountEvent::AccountDisabled { sub, .. }) =
                serde_json::from_value(cause.payload.clone())
            else {
                return Ok(Vec::new());
            };
            Ok(sessions::live_of(db, &sub)
                .await?
                .into_iter()
                .map(|sid| (sid, sub.clone(), "account_disabled".to_owned()))
                .collect())
        }
        _ => Ok(Vec::new()),
    }
}

/// Schedules a logout token for every relying party of every session
/// `cause` ended.
pub async fn schedule(
    store: &Store,
    executor: &Executor,
    cause: &StoredEvent,
    retry_for: Duration,
) -> Result<(), ProjectorError> {
    let metadata = Metadata {
        actor: "policy".into(),
        request_id: format!("policy:{}", cause.cursor()),
        client_id: None,
        client_auth: None,
    };
    for (sid, sub, reason) in ended(store, cause).await? {
        for client_id in grants::signed_in_clients(store.db(), &sid).await? {
            let uri = clients::active_settings(store.db(), &client_id)
                .await?
                .and_then(|settings| settings.backchannel_logout_uri);
            let Some(uri) = uri else {
                continue;
            };
            let stream = BackchannelLogout::stream_id(&sid, &client_id, sha256_hex);
            let command = BackchannelLogoutCommand::Schedule {
                client_id,
                sub: sub.clone(),
                sid: sid.clone(),
                uri,
                reason: reason.clone(),
                retry_for_secs: retry_for.as_secs().max(1),
            };
            match executor
                .execute_with::<BackchannelLogout>(
                    &stream,
                    command,
                    &metadata,
                    Vec::new(),
                    Stream::New,
                )
                .await
            {
                Ok(_) | Err(ExecuteError::Rejected(_)) => {}
                Err(err) => {
                    return Err(ProjectorError::Sql(sqlx::Error::Protocol(format!(
                        "a back-channel logout could not be scheduled: {err}"
                    ))))
                }
            }
        }
    }
    Ok(())
}
