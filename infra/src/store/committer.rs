//! Group commit. Commands hand their events to one committer task; per
//! batch it opens one `BEGIN IMMEDIATE` transaction, reads the heads of the
//! streams the batch touches, drops the commands decided on a stale head
//! (conflicts), appends the others' events in a few multi-row inserts with
//! positions, commit time and chain hashes, writes the inline rows, commits,
//! and only then answers each waiting command. A conflict fails only its own
//! command; the rest of the batch commits.

use chrono::Utc;
use cqrs_es::persist::SerializedEvent;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};

use super::inline::{self, timestamp};
use super::statement::execute_sqlite;
use super::{chain, run_sql, Cursor, StoredEvent};
use crate::metrics::Metrics;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Enough to amortise one fsync over many commands, small enough that a
/// batch's transaction stays short.
pub const DEFAULT_MAX_BATCH: usize = 256;
/// SQLite's bound-parameter limit is 32,766; ten columns per event.
const EVENTS_PER_INSERT: usize = 500;
/// Two parameters per stream in the head lookup.
const STREAMS_PER_LOOKUP: usize = 1000;

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
}

#[derive(Debug, Clone)]
pub struct AppendReceipt {
    pub stored: Vec<StoredEvent>,
}

impl AppendReceipt {
    pub fn cursor(&self) -> Option<Cursor> {
        self.stored.last().map(|event| Cursor {
            position: event.position,
        })
    }
}

pub(crate) struct AppendRequest {
    pub events: Vec<SerializedEvent>,
    pub side_writes: Vec<SideWrite>,
    pub reply: oneshot::Sender<Result<AppendReceipt, AppendError>>,
}

pub(crate) async fn run(
    mut conn: SqliteConnection,
    mut requests: mpsc::Receiver<AppendRequest>,
    metrics: Arc<Metrics>,
    committed: watch::Sender<i64>,
    max_batch: usize,
) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let outcomes = commit_batch(&mut conn, &batch, &metrics).await;
        if let Some(last) = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().and_then(AppendReceipt::cursor))
            .max()
        {
            committed.send_replace(last.position);
        }
        for (request, outcome) in batch.into_iter().zip(outcomes) {
            // A command that gave up waiting is not our concern.
            let _ = request.reply.send(outcome);
        }
    }
}

async fn commit_batch(
    conn: &mut SqliteConnection,
    batch: &[AppendRequest],
    metrics: &Metrics,
) -> Vec<Result<AppendReceipt, AppendError>> {
    Metrics::bump(&metrics.batches_started, 1);
    if let Err(err) = run_sql(conn, "BEGIN IMMEDIATE").await {
        return batch
            .iter()
            .map(|_| Err(AppendError::Unavailable(err.to_string())))
            .collect();
    }
    let outcomes = match write_batch(conn, batch).await {
        Ok(outcomes) => outcomes,
        Err(err) => {
            let _ = run_sql(conn, "ROLLBACK").await;
            return batch.iter().map(|_| Err(err.clone())).collect();
        }
    };
    if let Err(err) = run_sql(conn, "COMMIT").await {
        tracing::error!(error = %err, "COMMIT of an event batch failed; answering 503 to its commands");
        let _ = run_sql(conn, "ROLLBACK").await;
        return outcomes
            .into_iter()
            .map(|o| match o {
                Ok(_) => Err(AppendError::OutcomeUnknown),
                other => other,
            })
            .collect();
    }
    let succeeded: Vec<&AppendReceipt> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    Metrics::bump(&metrics.batches_committed, 1);
    Metrics::bump(&metrics.commands_committed, succeeded.len() as u64);
    Metrics::bump(
        &metrics.events_committed,
        succeeded.iter().map(|r| r.stored.len() as u64).sum(),
    );
    let conflicts = outcomes
        .iter()
        .filter(|o| matches!(o, Err(AppendError::Conflict)))
        .count();
    Metrics::bump(&metrics.conflicts, conflicts as u64);
    outcomes
}

/// Decides every command's fate against the streams' current heads, read
/// in one query under the write lock, so losers are dropped before anything
/// is written; then writes the winners' events in a few multi-row inserts,
/// their inline rows and side writes. An `Err` fails the whole batch.
async fn write_batch(
    conn: &mut SqliteConnection,
    batch: &[AppendRequest],
) -> Result<Vec<Result<AppendReceipt, AppendError>>, AppendError> {
    let unavailable = |err: sqlx::Error| AppendError::Unavailable(err.to_string());
    let mut next_position: i64 =
        sqlx::query_scalar("SELECT coalesce(max(position), 0) + 1 FROM events")
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
    let mut heads = stream_heads(conn, batch).await.map_err(unavailable)?;
    let recorded_at = timestamp(&Utc::now());
    let mut outcomes = Vec::with_capacity(batch.len());
    for request in batch {
        let outcome = stage(request, &mut heads, next_position, &recorded_at);
        if let Ok(receipt) = &outcome {
            next_position += receipt.stored.len() as i64;
        }
        outcomes.push(outcome);
    }
    let accepted: Vec<&StoredEvent> = outcomes.iter().flatten().flat_map(|r| &r.stored).collect();
    for chunk in accepted.chunks(EVENTS_PER_INSERT) {
        insert_events(conn, chunk).await?;
    }
    let mut rows = Vec::with_capacity(accepted.len() * 2);
    for event in accepted {
        rows.extend(
            inline::statements("main", event)
                .map_err(|err| AppendError::Rejected(err.to_string()))?,
        );
    }
    execute_sqlite(conn, &rows).await.map_err(unavailable)?;
    for (request, outcome) in batch.iter().zip(&outcomes) {
        if outcome.is_ok() {
            for write in &request.side_writes {
                side_write(conn, write).await.map_err(unavailable)?;
            }
        }
    }
    Ok(outcomes)
}

type StreamKey = (String, String);

/// The last sequence and hash of every stream the batch touches.
async fn stream_heads(
    conn: &mut SqliteConnection,
    batch: &[AppendRequest],
) -> Result<HashMap<StreamKey, (i64, String)>, sqlx::Error> {
    let keys: HashSet<StreamKey> = batch
        .iter()
        .filter_map(|r| r.events.first())
        .map(|e| (e.aggregate_type.clone(), e.aggregate_id.clone()))
        .collect();
    let mut heads = HashMap::with_capacity(keys.len());
    let keys: Vec<StreamKey> = keys.into_iter().collect();
    for chunk in keys.chunks(STREAMS_PER_LOOKUP) {
        let mut query: QueryBuilder<Sqlite> = QueryBuilder::new("WITH wanted(t, i) AS (");
        query.push_values(chunk, |mut row, (aggregate_type, aggregate_id)| {
            row.push_bind(aggregate_type).push_bind(aggregate_id);
        });
        query.push(
            ") SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.hash FROM wanted \
             JOIN events e ON e.aggregate_type = wanted.t AND e.aggregate_id = wanted.i \
             AND e.sequence = (SELECT max(m.sequence) FROM events m WHERE m.aggregate_type = wanted.t AND m.aggregate_id = wanted.i)",
        );
        let rows: Vec<(String, String, i64, String)> =
            query.build_query_as().fetch_all(&mut *conn).await?;
        heads.extend(
            rows.into_iter()
                .map(|(t, i, sequence, hash)| ((t, i), (sequence, hash))),
        );
    }
    Ok(heads)
}

/// Chains one command's events onto its stream's head, or reports that the
/// command was decided on a stale view of the stream.
fn stage(
    request: &AppendRequest,
    heads: &mut HashMap<StreamKey, (i64, String)>,
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
    for (offset, event) in request.events.iter().enumerate() {
        let sequence = event.sequence as i64;
        let hash = chain::link(
            &previous,
            &chain::RowForHash {
                aggregate_type: &event.aggregate_type,
                aggregate_id: &event.aggregate_id,
                sequence,
                event_type: &event.event_type,
                event_version: &event.event_version,
                payload: &event.payload,
                metadata: &event.metadata,
                recorded_at,
            },
        );
        previous = hash.clone();
        stored.push(StoredEvent {
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

async fn insert_events(
    conn: &mut SqliteConnection,
    rows: &[&StoredEvent],
) -> Result<(), AppendError> {
    let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, position, recorded_at, hash) ",
    );
    insert.push_values(rows, |mut row, event| {
        row.push_bind(&event.aggregate_type)
            .push_bind(&event.aggregate_id)
            .push_bind(event.sequence)
            .push_bind(&event.event_type)
            .push_bind(&event.event_version)
            .push_bind(event.payload.to_string())
            .push_bind(event.metadata.to_string())
            .push_bind(event.position)
            .push_bind(&event.recorded_at)
            .push_bind(&event.hash);
    });
    match insert.build().execute(&mut *conn).await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(AppendError::Conflict),
        Err(err) => Err(AppendError::Unavailable(err.to_string())),
    }
}

async fn side_write(conn: &mut SqliteConnection, write: &SideWrite) -> Result<(), sqlx::Error> {
    match write {
        SideWrite::StoreSubjectKey {
            sub,
            wrapped_key,
            created_at,
        } => {
            sqlx::query("INSERT INTO subject_keys (sub, wrapped_key, created_at) VALUES (?, ?, ?)")
                .bind(sub)
                .bind(wrapped_key)
                .bind(created_at)
                .execute(conn)
                .await?
        }
        SideWrite::DeleteSubjectKey { sub } => {
            sqlx::query("DELETE FROM subject_keys WHERE sub = ?")
                .bind(sub)
                .execute(conn)
                .await?
        }
        SideWrite::StoreSigningSecret {
            kid,
            wrapped_private,
        } => {
            sqlx::query("INSERT INTO signing_key_secrets (kid, wrapped_private) VALUES (?, ?)")
                .bind(kid)
                .bind(wrapped_private)
                .execute(conn)
                .await?
        }
    };
    Ok(())
}
