//! Group commit. Commands hand their events to one committer task; per
//! batch it opens one `BEGIN IMMEDIATE` transaction, appends every
//! command's events (one multi-row insert each) with positions, commit time
//! and chain hashes, writes the inline rows, commits, and only then answers
//! each waiting command. A command that loses a conflict is rolled back to
//! its own savepoint; the rest of the batch still commits.

use chrono::Utc;
use cqrs_es::persist::SerializedEvent;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};

use super::inline::{self, timestamp};
use super::{chain, run_sql, Cursor, StoredEvent};
use crate::metrics::Metrics;
use std::sync::Arc;

/// Enough to amortise one fsync over many commands, small enough that a
/// batch's transaction stays short.
pub const DEFAULT_MAX_BATCH: usize = 256;
/// SQLite's bound-parameter limit is 32,766; ten columns per event.
const EVENTS_PER_INSERT: usize = 500;

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
    let all = |error: AppendError| batch.iter().map(|_| Err(error.clone())).collect();
    if let Err(err) = run_sql(conn, "BEGIN IMMEDIATE").await {
        return all(AppendError::Unavailable(err.to_string()));
    }
    let next: Result<i64, _> =
        sqlx::query_scalar("SELECT coalesce(max(position), 0) + 1 FROM events")
            .fetch_one(&mut *conn)
            .await;
    let mut next_position = match next {
        Ok(position) => position,
        Err(err) => {
            let _ = run_sql(conn, "ROLLBACK").await;
            return all(AppendError::Unavailable(err.to_string()));
        }
    };
    let recorded_at = timestamp(&Utc::now());
    let mut outcomes = Vec::with_capacity(batch.len());
    for request in batch {
        let outcome = append_in_savepoint(conn, request, next_position, &recorded_at).await;
        if let Ok(receipt) = &outcome {
            next_position += receipt.stored.len() as i64;
        } else if matches!(outcome, Err(AppendError::Conflict)) {
            Metrics::bump(&metrics.conflicts, 1);
        }
        outcomes.push(outcome);
    }
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
    outcomes
}

async fn append_in_savepoint(
    conn: &mut SqliteConnection,
    request: &AppendRequest,
    first_position: i64,
    recorded_at: &str,
) -> Result<AppendReceipt, AppendError> {
    let unavailable = |err: sqlx::Error| AppendError::Unavailable(err.to_string());
    run_sql(conn, "SAVEPOINT command")
        .await
        .map_err(unavailable)?;
    let outcome = append(conn, request, first_position, recorded_at).await;
    if outcome.is_err() {
        run_sql(conn, "ROLLBACK TO command")
            .await
            .map_err(unavailable)?;
    }
    run_sql(conn, "RELEASE command")
        .await
        .map_err(unavailable)?;
    outcome
}

async fn append(
    conn: &mut SqliteConnection,
    request: &AppendRequest,
    first_position: i64,
    recorded_at: &str,
) -> Result<AppendReceipt, AppendError> {
    let Some(first) = request.events.first() else {
        return Ok(AppendReceipt { stored: Vec::new() });
    };
    let mut previous = previous_hash(conn, first).await?;
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
    for chunk in stored.chunks(EVENTS_PER_INSERT) {
        insert_events(conn, chunk).await?;
    }
    for event in &stored {
        inline::apply(conn, "main", event)
            .await
            .map_err(|err| match err {
                inline::ApplyError::Sql(sql) => AppendError::Unavailable(sql.to_string()),
                unknown => AppendError::Rejected(unknown.to_string()),
            })?;
    }
    for write in &request.side_writes {
        side_write(conn, write)
            .await
            .map_err(|err| AppendError::Unavailable(err.to_string()))?;
    }
    Ok(AppendReceipt { stored })
}

async fn previous_hash(
    conn: &mut SqliteConnection,
    first: &SerializedEvent,
) -> Result<String, AppendError> {
    if first.sequence <= 1 {
        return Ok(chain::GENESIS.to_owned());
    }
    let previous: Option<String> = sqlx::query_scalar(
        "SELECT hash FROM events WHERE aggregate_type = ? AND aggregate_id = ? AND sequence = ?",
    )
    .bind(&first.aggregate_type)
    .bind(&first.aggregate_id)
    .bind(first.sequence as i64 - 1)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|err| AppendError::Unavailable(err.to_string()))?;
    // A missing predecessor means the command was decided on a stale view.
    previous.ok_or(AppendError::Conflict)
}

async fn insert_events(
    conn: &mut SqliteConnection,
    rows: &[StoredEvent],
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
