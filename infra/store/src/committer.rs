//! Group commit. Commands hand their events to one committer task; per
//! batch it opens one `BEGIN IMMEDIATE` transaction, reads the heads of the
//! streams the batch touches, drops the commands decided on a stale head
//! (conflicts), appends the others' events with positions, commit time and
//! chain hashes (a few multi-row inserts on SQLite, one insert of arrays on
//! PostgreSQL: `event_rows`), writes the inline rows, commits,
//! and only then answers each waiting command. A conflict fails only its own
//! command; the rest of the batch commits.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use cqrs_es::persist::SerializedEvent;
use tokio::sync::{mpsc, oneshot, watch};

use super::conn::{Conn, Dialect, RowExt, Target};
use super::heads::{stream_heads, StreamKey};
use super::inline::{self, timestamp};
use super::statement::Statement;
use super::views::{accounts, keys};
use super::{chain, coalesce, event_rows, Cursor, StoredEvent};
use crate::memory::Memory;
use crate::metrics::Metrics;

/// Enough to amortise one fsync over many commands, small enough that a
/// batch's transaction stays short.
pub const DEFAULT_MAX_BATCH: usize = 256;
/// How often a PostgreSQL batch is re-run after another process won a
/// stream it touched, before its commands are answered "unavailable".
const MAX_BATCH_ATTEMPTS: usize = 3;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// Another command appended to the same stream first: reload and retry.
    #[error("another command changed this aggregate first")]
    Conflict,
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    /// COMMIT was sent and its answer lost: the batch may or may not be
    /// durable, so the caller must not retry blindly.
    #[error("the outcome of the commit is unknown")]
    OutcomeUnknown,
    #[error("the events were refused by the read model: {0}")]
    Rejected(String),
}

/// Rows outside the log that must commit with a command's events.
#[derive(Debug, Clone)]
pub enum SideWrite {
    StoreSubjectKey {
        sub: String,
        wrapped_key: String,
        created_at: String,
    },
    DeleteSubjectKey {
        sub: String,
    },
    StoreSigningSecret {
        kid: String,
        wrapped_private: String,
    },
    /// The aggregate's state after `last_sequence`, replacing its earlier
    /// snapshot: loading reads it and only the events after (ADR 0030).
    Snapshot {
        aggregate_type: String,
        aggregate_id: String,
        last_sequence: i64,
        current_snapshot: i64,
        payload: String,
    },
}

#[derive(Debug, Clone)]
pub struct AppendReceipt {
    pub stored: Vec<StoredEvent>,
}

impl AppendReceipt {
    pub fn cursor(&self) -> Option<Cursor> {
        self.stored.iter().map(StoredEvent::cursor).max()
    }
}

pub(crate) struct AppendRequest {
    pub events: Vec<SerializedEvent>,
    /// One per event, made by the appending task.
    pub prepared: Vec<chain::Prepared>,
    pub side_writes: Vec<SideWrite>,
    pub reply: oneshot::Sender<Result<AppendReceipt, AppendError>>,
}

pub(crate) struct Committer {
    pub target: Target,
    pub metrics: Arc<Metrics>,
    pub committed: watch::Sender<Cursor>,
    /// Told only of batches holding one of their event types.
    pub watchers: super::watchers::Watchers,
    pub max_batch: usize,
    /// SQLite only: told what each batch claims and changes.
    pub memory: Option<Arc<Memory>>,
    /// SQLite only: taken for each batch, in turn with the projector.
    pub write_turn: Option<super::WriteTurn>,
}

impl Committer {
    /// SQLite's committer calls the database inline (ADR 0025), so it gets
    /// a thread of its own: its fsync then blocks nobody, and the next
    /// batch gathers in the channel meanwhile.
    pub fn run_on_own_thread(
        self,
        conn: Conn,
        requests: mpsc::Receiver<AppendRequest>,
    ) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("writ-committer".into())
            .spawn(move || runtime.block_on(self.run(conn, requests)))
            .map(drop)
    }

    pub async fn run(self, conn: Conn, mut requests: mpsc::Receiver<AppendRequest>) {
        let metrics = &self.metrics;
        let mut conn = Some(conn);
        while let Some(first) = requests.recv().await {
            let mut batch = vec![first];
            gather(&mut batch, &mut requests, self.max_batch);
            let turn = match &self.write_turn {
                Some(turn) => {
                    let turn = turn.lock().await;
                    // What arrived while another writer had the turn.
                    gather(&mut batch, &mut requests, self.max_batch);
                    Some(turn)
                }
                None => None,
            };
            let outcomes = match conn.as_mut() {
                Some(live) => commit_batch(live, &batch, metrics, self.memory.as_deref()).await,
                None => batch
                    .iter()
                    .map(|_| {
                        Err(AppendError::Unavailable(
                            "no connection to the database".into(),
                        ))
                    })
                    .collect(),
            };
            let lost = |o: &Result<AppendReceipt, AppendError>| {
                matches!(
                    o,
                    Err(AppendError::Unavailable(_) | AppendError::OutcomeUnknown)
                )
            };
            drop(turn);
            if conn.is_none() || outcomes.iter().any(lost) {
                conn = healthy_or_reconnected(conn, &self.target).await;
            }
            if let Some(last) = outcomes
                .iter()
                .filter_map(|o| o.as_ref().ok().and_then(AppendReceipt::cursor))
                .max()
            {
                self.committed.send_replace(last);
                self.watchers.notify(&outcomes, last);
            }
            for (request, outcome) in batch.into_iter().zip(outcomes) {
                // A command that gave up waiting is not our concern.
                let _ = request.reply.send(outcome);
            }
            if let Some(live) = conn.as_ref() {
                live.between_batches();
            }
        }
    }
}

/// Adds what is waiting in the channel to `batch`, up to `max_batch`.
fn gather(
    batch: &mut Vec<AppendRequest>,
    requests: &mut mpsc::Receiver<AppendRequest>,
    max_batch: usize,
) {
    while batch.len() < max_batch {
        match requests.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
}

/// After a failed batch: keep the connection if it still answers, else
/// open a new one (the database restarted, or the connection was cut). A
/// command that failed is never retried here; only the next batch gains.
async fn healthy_or_reconnected(conn: Option<Conn>, target: &Target) -> Option<Conn> {
    // commit_batch has already rolled back whatever it began.
    if let Some(mut live) = conn {
        if live
            .fetch_optional(&Statement::new("SELECT 1 AS alive"))
            .await
            .is_ok()
        {
            return Some(live);
        }
    }
    match Conn::connect_committer(target).await {
        Ok(fresh) => {
            tracing::info!("the committer reconnected to the database");
            Some(fresh)
        }
        Err(err) => {
            tracing::warn!(error = %err, "the committer cannot reach the database; commands answer 503");
            None
        }
    }
}

async fn commit_batch(
    conn: &mut Conn,
    batch: &[AppendRequest],
    metrics: &Metrics,
    memory: Option<&Memory>,
) -> Vec<Result<AppendReceipt, AppendError>> {
    metrics.batches_started.inc();
    let fail_all = |err: AppendError| batch.iter().map(|_| Err(err.clone())).collect();
    let mut attempt = 0;
    let outcomes = loop {
        attempt += 1;
        let context = match begin(conn).await {
            Ok(context) => context,
            Err(err) => {
                // PostgreSQL's BEGIN may have succeeded before its query failed.
                let _ = conn.batch("ROLLBACK").await;
                return fail_all(AppendError::Unavailable(err.to_string()));
            }
        };
        match write_batch(conn, batch, context).await {
            Ok(outcomes) => break outcomes,
            // Another process appended to one of our streams between our
            // head lookup and our insert (PostgreSQL has no single writer):
            // re-run the batch, whose lookup now sees the winner.
            Err(AppendError::Conflict) if attempt < MAX_BATCH_ATTEMPTS => {
                let _ = conn.batch("ROLLBACK").await;
                metrics.batches_rerun.inc();
            }
            Err(err) => {
                let _ = conn.batch("ROLLBACK").await;
                let err = if matches!(err, AppendError::Conflict) {
                    AppendError::Unavailable(
                        "the batch kept conflicting with another writer".into(),
                    )
                } else {
                    err
                };
                return fail_all(err);
            }
        }
    };
    let written: Vec<&StoredEvent> = outcomes
        .iter()
        .flatten()
        .flat_map(|r| r.stored.iter())
        .collect();
    let positions = written.first().zip(written.last());
    if let (Some(memory), Some((first, last))) = (memory, positions) {
        memory.claim(first.position, last.position);
    }
    if let Err(err) = conn.batch(commit(conn.dialect())).await {
        tracing::error!(error = %err, "COMMIT of an event batch failed; answering 503 to its commands");
        // Before the write lock can pass to another writer at our positions.
        if let (Some(memory), Some((first, _))) = (memory, positions) {
            memory.abandon(first.position);
        }
        let _ = conn.batch("ROLLBACK").await;
        return outcomes
            .into_iter()
            .map(|o| match o {
                Ok(_) => Err(AppendError::OutcomeUnknown),
                other => other,
            })
            .collect();
    }
    conn.committed();
    if let Some(memory) = memory {
        memory.committed(&written);
    }
    let succeeded: Vec<&AppendReceipt> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    metrics.batches_committed.inc();
    metrics.commands_committed.inc_by(succeeded.len() as u64);
    metrics.batch_sizes.observe(succeeded.len() as f64);
    metrics
        .events_committed
        .inc_by(succeeded.iter().map(|r| r.stored.len() as u64).sum());
    let conflicts = outcomes
        .iter()
        .filter(|o| matches!(o, Err(AppendError::Conflict)))
        .count();
    metrics.conflicts.inc_by(conflicts as u64);
    outcomes
}

/// Decides every command's fate against the streams' current heads, read
/// in one query inside the transaction, so losers are dropped before
/// anything is written; then writes the winners' events, their inline rows
/// and side writes. An `Err` fails the attempt.
async fn write_batch(
    conn: &mut Conn,
    batch: &[AppendRequest],
    (txid, mut next_position, recorded_at): (i64, i64, String),
) -> Result<Vec<Result<AppendReceipt, AppendError>>, AppendError> {
    let unavailable = |err: sqlx::Error| AppendError::Unavailable(err.to_string());
    let mut heads = stream_heads(conn, batch).await.map_err(unavailable)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for request in batch {
        let outcome = stage(request, &mut heads, txid, next_position, &recorded_at);
        if let Ok(receipt) = &outcome {
            next_position += receipt.stored.len() as i64;
        }
        outcomes.push(outcome);
    }
    let mut accepted: Vec<(&mut StoredEvent, &chain::Prepared)> = outcomes
        .iter_mut()
        .zip(batch)
        .filter_map(|(outcome, request)| outcome.as_mut().ok().zip(Some(request)))
        .flat_map(|(receipt, request)| receipt.stored.iter_mut().zip(&request.prepared))
        .collect();
    event_rows::insert(conn, &mut accepted).await?;
    let mut changes = Vec::with_capacity(accepted.len() * 2);
    for (event, _) in &accepted {
        changes.extend(
            inline::changes((&**event).into(), &&event.payload)
                .map_err(|err| AppendError::Rejected(err.to_string()))?,
        );
    }
    let dialect = conn.dialect();
    let mut rows = coalesce::statements(dialect.live_schema(), dialect, changes);
    for (request, outcome) in batch.iter().zip(&outcomes) {
        if outcome.is_ok() {
            for write in &request.side_writes {
                rows.extend(side_write(write, conn.dialect()));
            }
        }
    }
    conn.execute(&rows).await.map_err(unavailable)?;
    Ok(outcomes)
}

/// Opens the batch's write transaction and reads its transaction id, first
/// position and commit time. On SQLite the committer holds the only write
/// lock, so it numbers positions itself; on PostgreSQL the identity column
/// does, `now()` is the transaction's, and BEGIN travels with the query in
/// one round trip (the simple protocol: nothing is bound).
async fn begin(conn: &mut Conn) -> Result<(i64, i64, String), sqlx::Error> {
    match conn.dialect() {
        Dialect::Sqlite => {
            conn.begin_write().await?;
            let row = conn
                .fetch_optional(&Statement::new(
                    "SELECT coalesce(max(position), 0) + 1 AS next FROM events",
                ))
                .await?
                .unwrap_or_default();
            Ok((0, row.int("next").unwrap_or(1), timestamp(&Utc::now())))
        }
        Dialect::Postgres => {
            let row = conn
                .fetch_unbound(
                    "BEGIN; SELECT pg_current_xact_id()::text::bigint AS txid, \
                     to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS now",
                )
                .await?
                .into_iter()
                .next()
                .unwrap_or_default();
            Ok((
                row.int("txid").unwrap_or(0),
                0,
                row.text("now").unwrap_or_default(),
            ))
        }
    }
}

/// The batch's COMMIT. On PostgreSQL the notice to projectors in any
/// process goes in the same round trip; it is delivered at COMMIT. The
/// channel is a constant, so nothing outside Writ enters the SQL text.
fn commit(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "COMMIT",
        Dialect::Postgres => NOTIFY_AND_COMMIT,
    }
}

const NOTIFY_AND_COMMIT: &str = "SELECT pg_notify('writ_events', ''); COMMIT";

/// Chains one command's events onto its stream's head, or reports that the
/// command was decided on a stale view of the stream.
fn stage(
    request: &AppendRequest,
    heads: &mut HashMap<StreamKey, (i64, String)>,
    txid: i64,
    first_position: i64,
    recorded_at: &str,
) -> Result<AppendReceipt, AppendError> {
    let Some(first) = request.events.first() else {
        return Ok(AppendReceipt { stored: Vec::new() });
    };
    if let Some(unknown) = request.events.iter().find(|e| {
        !writ_domain::catalog::is_known(&e.aggregate_type, &e.event_type, &e.event_version)
    }) {
        return Err(AppendError::Rejected(format!(
            "{}/{} v{} is not an event this version of Writ knows",
            unknown.aggregate_type, unknown.event_type, unknown.event_version
        )));
    }
    let key = (first.aggregate_type.clone(), first.aggregate_id.clone());
    let (head_sequence, head_hash) = heads
        .get(&key)
        .cloned()
        .unwrap_or((0, chain::GENESIS.to_owned()));
    if first.sequence as i64 != head_sequence + 1 {
        return Err(AppendError::Conflict);
    }
    let mut previous = head_hash;
    let mut stored = Vec::with_capacity(request.events.len());
    for (offset, (event, prepared)) in request.events.iter().zip(&request.prepared).enumerate() {
        let sequence = event.sequence as i64;
        let hash = prepared.link(&previous, recorded_at, sequence);
        previous = hash.clone();
        stored.push(StoredEvent {
            txid,
            position: first_position + offset as i64,
            recorded_at: recorded_at.to_owned(),
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            payload: event.payload.clone(),
            metadata: event.metadata.clone(),
            hash,
        });
    }
    let last = stored
        .last()
        .map(|e| (e.sequence, e.hash.clone()))
        .unwrap_or_default();
    heads.insert(key, last);
    Ok(AppendReceipt { stored })
}

fn side_write(write: &SideWrite, dialect: Dialect) -> Vec<Statement> {
    match write {
        SideWrite::StoreSubjectKey {
            sub,
            wrapped_key,
            created_at,
        } => vec![accounts::store_subject_key(sub, wrapped_key, created_at)],
        SideWrite::DeleteSubjectKey { sub } => vec![accounts::delete_subject_key(sub)],
        SideWrite::StoreSigningSecret {
            kid,
            wrapped_private,
        } => vec![keys::store_secret(kid, wrapped_private)],
        SideWrite::Snapshot {
            aggregate_type,
            aggregate_id,
            last_sequence,
            current_snapshot,
            payload,
        } => {
            let cast = match dialect {
                Dialect::Sqlite => "",
                Dialect::Postgres => "::json",
            };
            vec![
                Statement::new("DELETE FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2")
                    .text(aggregate_type.clone())
                    .text(aggregate_id.clone()),
                Statement::new(format!(
                    "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) \
                     VALUES ($1, $2, $3, $4, $5{cast})"
                ))
                .text(aggregate_type.clone())
                .text(aggregate_id.clone())
                .int(*last_sequence)
                .int(*current_snapshot)
                .text(payload.clone()),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_commit_notifies_the_channel_projectors_listen_on() {
        let notify = format!(
            "SELECT pg_notify('{}', ''); COMMIT",
            super::super::COMMIT_CHANNEL
        );
        assert_eq!(super::NOTIFY_AND_COMMIT, notify);
    }
}
