//! Cross-aggregate policies as a process manager driven by the log (a
//! session's end also schedules its back-channel logouts, `logouts.rs`):
//! disabling a client or an account, changing a password, or withdrawing a
//! consent revokes the affected grants with `GrantRevoked` events, and a
//! revoked grant's exchanged children (RFC 8693) follow it, each child's
//! revocation reaching its own children in turn. An exchange committed
//! after its parent's revocation (a race the children's lookup at the
//! revocation could not see) is revoked when the policy reaches it. The
//! inline rows already make those tokens inactive at once; these events
//! make the revocation part of each grant's own history (and of the
//! revocation feed). Idempotent by construction: revoking a revoked grant
//! is refused and recorded nowhere, so a replay after a crash is harmless.

use cqrs_es::Aggregate;
use writ_domain::account::{Account, AccountEvent};
use writ_domain::client::{Client, ClientEvent};
use writ_domain::consent::{Consent, ConsentEvent};
use writ_domain::grant::{Grant, GrantCommand, GrantEvent};
use writ_store::inline::timestamp;
use writ_store::views::grants::{self, Holders};
use writ_store::{Conn, Cursor, EventHeader, Store, StoredEvent};
use writ_store::{ExecuteError, Executor, Metadata};

use crate::ProjectorError;

const CHECKPOINT: &str = "policies";
const BATCH: i64 = 1000;

/// Whether moving the policies' checkpoint happens inside the projector's
/// transaction, which holds this process's write turn already, or as a
/// write of its own, which must take it ([`writ_store::WriteTurn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Held,
    Take,
}

/// Which grants an event ends, and why.
struct Consequence {
    grants: Ending,
    reason: &'static str,
}

enum Ending {
    Held(Holders),
    /// An exchanged grant whose ancestors include a revoked one.
    ExchangedUnder {
        gid: String,
        ancestors: Vec<String>,
    },
}

/// The only event types with consequences; no other event's payload is
/// read.
const TRIGGERS: &[&str] = &[
    "ClientDisabled",
    "AccountDisabled",
    "AccountForgotten",
    "PasswordChanged",
    "ConsentWithdrawn",
    "GrantRevoked",
    "GrantExchanged",
    "SessionEnded",
];

fn consequence(event: &StoredEvent) -> Option<Consequence> {
    if !TRIGGERS.contains(&event.event_type.as_str()) {
        return None;
    }
    let payload = event.payload.clone();
    match event.aggregate_type.as_str() {
        Client::TYPE => match serde_json::from_value(payload).ok()? {
            ClientEvent::ClientDisabled { .. } => Some(Consequence {
                grants: Ending::Held(Holders {
                    client_id: Some(event.aggregate_id.clone()),
                    ..Holders::default()
                }),
                reason: "client_disabled",
            }),
            _ => None,
        },
        Account::TYPE => match serde_json::from_value(payload).ok()? {
            // Only grants from before: the account may have been enabled
            // again, and new grants made, by the time the policy runs.
            AccountEvent::AccountDisabled {
                sub, disabled_at, ..
            } => Some(Consequence {
                grants: Ending::Held(Holders {
                    sub: Some(sub),
                    created_before: Some(timestamp(&disabled_at)),
                    ..Holders::default()
                }),
                reason: "account_disabled",
            }),
            AccountEvent::AccountForgotten { sub, .. } => Some(Consequence {
                grants: Ending::Held(Holders {
                    sub: Some(sub),
                    ..Holders::default()
                }),
                reason: "account_forgotten",
            }),
            // Only grants that began before the change: later ones were
            // obtained with the new password.
            AccountEvent::PasswordChanged {
                sub, changed_at, ..
            } => Some(Consequence {
                grants: Ending::Held(Holders {
                    sub: Some(sub),
                    created_before: Some(timestamp(&changed_at)),
                    ..Holders::default()
                }),
                reason: "password_changed",
            }),
            _ => None,
        },
        Consent::TYPE => match serde_json::from_value(payload).ok()? {
            ConsentEvent::ConsentWithdrawn {
                sub,
                client_id,
                withdrawn_at,
                ..
            } => Some(Consequence {
                grants: Ending::Held(Holders {
                    client_id: Some(client_id),
                    sub: Some(sub),
                    created_before: Some(timestamp(&withdrawn_at)),
                    ..Holders::default()
                }),
                reason: "consent_withdrawn",
            }),
            _ => None,
        },
        Grant::TYPE => match serde_json::from_value(payload).ok()? {
            GrantEvent::GrantRevoked { .. } => Some(Consequence {
                grants: Ending::Held(Holders {
                    parent_gid: Some(event.aggregate_id.clone()),
                    ..Holders::default()
                }),
                reason: "parent_revoked",
            }),
            GrantEvent::GrantExchanged { lineage, .. } => Some(Consequence {
                grants: Ending::ExchangedUnder {
                    gid: event.aggregate_id.clone(),
                    ancestors: lineage.ancestors,
                },
                reason: "parent_revoked",
            }),
            _ => None,
        },
        _ => None,
    }
}

pub struct Policies {
    store: Store,
    executor: Executor,
    /// How long a relying party's logout token is retried for.
    logout_retry_for: std::time::Duration,
}

/// Back-Channel Logout gives no bound; a day outlasts an outage.
pub const DEFAULT_LOGOUT_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Policies {
    pub fn new(store: Store, executor: Executor) -> Self {
        Self {
            store,
            executor,
            logout_retry_for: DEFAULT_LOGOUT_RETRY_FOR,
        }
    }

    pub fn with_logout_retry_for(mut self, retry_for: std::time::Duration) -> Self {
        self.logout_retry_for = retry_for;
        self
    }

    /// Handles the next events after the checkpoint up to `through` (the
    /// projector's); `Ok(0)` when idle. The checkpoint moves only after
    /// every consequence is committed. The checkpoint goes through the
    /// projector's own connection: the store's SQLite pool is read-only.
    /// Never past the projector: the policies' checkpoint then moves in the
    /// projector's own transactions, where running ahead under load made
    /// every idle moment a write of its own.
    pub async fn step(&self, conn: &mut Conn, through: Cursor) -> Result<usize, ProjectorError> {
        let from = crate::read_checkpoint(conn, CHECKPOINT).await?;
        if from >= through {
            return Ok(0);
        }
        let mut headers = self.store.headers_after(from, BATCH).await?;
        headers.retain(|header| header.cursor() <= through);
        self.handle(conn, from, &headers, Turn::Take).await?;
        Ok(headers.len())
    }

    /// Handles a slice the projector has just indexed, when the policies
    /// are at its start, so catching up reads the log once; otherwise
    /// [`Policies::step`] catches up, a step after each slice and the rest
    /// when the projector idles.
    pub async fn follow(
        &self,
        conn: &mut Conn,
        from: Cursor,
        headers: &[EventHeader],
        turn: Turn,
    ) -> Result<(), ProjectorError> {
        if crate::read_checkpoint(conn, CHECKPOINT).await? == from {
            self.handle(conn, from, headers, turn).await?;
        }
        Ok(())
    }

    pub fn has_triggers(headers: &[EventHeader]) -> bool {
        headers
            .iter()
            .any(|header| TRIGGERS.contains(&header.event_type.as_str()))
    }

    async fn handle(
        &self,
        conn: &mut Conn,
        from: Cursor,
        headers: &[EventHeader],
        turn: Turn,
    ) -> Result<(), ProjectorError> {
        let Some(last) = headers.last().map(EventHeader::cursor) else {
            return Ok(());
        };
        let triggers: Vec<i64> = headers
            .iter()
            .filter(|header| TRIGGERS.contains(&header.event_type.as_str()))
            .map(|header| header.position)
            .collect();
        if turn == Turn::Held && !triggers.is_empty() {
            // Their revocations are commands, which wait for the turn.
            return Err(ProjectorError::Invalid(
                "consequences inside the projector's transaction".into(),
            ));
        }
        for event in self.store.events_at(&triggers).await? {
            if let Some(consequence) = consequence(&event) {
                self.revoke_grants(&event, consequence).await?;
            }
            if crate::logouts::TRIGGERS.contains(&event.event_type.as_str()) {
                crate::logouts::schedule(
                    &self.store,
                    &self.executor,
                    &event,
                    self.logout_retry_for,
                )
                .await?;
            }
        }
        match turn {
            Turn::Held => crate::advance_checkpoint(conn, CHECKPOINT, from, last).await,
            Turn::Take => {
                crate::advance_checkpoint_alone(&self.store, conn, CHECKPOINT, from, last).await
            }
        }
    }

    async fn revoke_grants(
        &self,
        cause: &StoredEvent,
        consequence: Consequence,
    ) -> Result<(), ProjectorError> {
        let db = self.store.db();
        let grants = match consequence.grants {
            Ending::Held(holders) => grants::standing(db, &holders).await?,
            Ending::ExchangedUnder { gid, ancestors } => {
                if !writ_infra::tokens::ancestors_stand(&self.store, &ancestors).await? {
                    vec![gid]
                } else {
                    Vec::new()
                }
            }
        };
        let metadata = Metadata {
            actor: "policy".into(),
            request_id: format!("policy:{}", cause.cursor()),
            client_id: None,
            client_auth: None,
        };
        for gid in grants {
            let command = GrantCommand::Revoke {
                by: "policy".into(),
                reason: consequence.reason.into(),
            };
            match self
                .executor
                .execute::<Grant>(&gid, command, &metadata)
                .await
            {
                Ok(_) | Err(ExecuteError::Rejected(_)) => {}
                Err(err) => {
                    return Err(ProjectorError::Sql(sqlx::Error::Protocol(format!(
                        "policy revocation of grant {gid} failed: {err}"
                    ))))
                }
            }
        }
        Ok(())
    }
}
