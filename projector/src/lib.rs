//! The asynchronous projector: tails the log in global order and maintains
//! the tables that need not be current to the command (for now the audit
//! index), rows and checkpoint in one transaction. One testable step,
//! [`Projector::project_next`], in a loop, [`Projector::run_until_stopped`].

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod audit;
mod rebuild;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, SqliteConnection};
use tokio::sync::watch;
use writ_infra::store::inline::ApplyError;
use writ_infra::store::statement::execute_sqlite;
use writ_infra::store::{connect_options, run_sql, Cursor, Store, StoredEvent};

pub use rebuild::{rebuild_and_compare, TableDifference};

const PROJECTION: &str = "audit_index";
const BATCH: i64 = 500;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Projected { events: usize, through: Cursor },
    Idle,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// An event this version cannot read: the projection stops rather than
    /// skip it, so nothing is silently missing from what it shows.
    #[error("projection {PROJECTION} stopped: {0}")]
    Poison(String),
    #[error("projector storage error: {0}")]
    Sql(#[from] sqlx::Error),
}

impl From<ApplyError> for ProjectorError {
    fn from(err: ApplyError) -> Self {
        match err {
            ApplyError::Sql(sql) => Self::Sql(sql),
            unknown => Self::Poison(unknown.to_string()),
        }
    }
}

pub struct Projector {
    store: Store,
    conn: SqliteConnection,
    check_interval: Duration,
    stopped: Arc<AtomicBool>,
}

impl Projector {
    pub async fn new(store: Store, check_interval: Duration) -> Result<Self, ProjectorError> {
        let conn = SqliteConnection::connect_with(&connect_options(store.database_path())).await?;
        Ok(Self {
            store,
            conn,
            check_interval,
            stopped: Arc::new(AtomicBool::new(false)),
        })
    }

    /// True once a poison event has stopped the projection.
    pub fn stopped_flag(&self) -> Arc<AtomicBool> {
        self.stopped.clone()
    }

    pub async fn checkpoint(&mut self) -> Result<Cursor, ProjectorError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM projector_checkpoints WHERE projection = ?")
                .bind(PROJECTION)
                .fetch_optional(&mut self.conn)
                .await?;
        Ok(Cursor {
            position: position.unwrap_or(0),
        })
    }

    /// Projects the next batch after the checkpoint, rows and checkpoint in
    /// one transaction, or reports that there is nothing to do.
    pub async fn project_next(&mut self) -> Result<Outcome, ProjectorError> {
        let from = self.checkpoint().await?;
        let events = self.store.events_after(from, BATCH).await?;
        let Some(last) = events.last().map(StoredEvent::cursor) else {
            return Ok(Outcome::Idle);
        };
        run_sql(&mut self.conn, "BEGIN IMMEDIATE").await?;
        match self.apply_batch(&events, from, last).await {
            Ok(()) => {
                run_sql(&mut self.conn, "COMMIT").await?;
                Ok(Outcome::Projected {
                    events: events.len(),
                    through: last,
                })
            }
            Err(err) => {
                let _ = run_sql(&mut self.conn, "ROLLBACK").await;
                Err(err)
            }
        }
    }

    async fn apply_batch(
        &mut self,
        events: &[StoredEvent],
        from: Cursor,
        last: Cursor,
    ) -> Result<(), ProjectorError> {
        let rows = events
            .iter()
            .map(|event| audit::statement("main", event))
            .collect::<Result<Vec<_>, _>>()?;
        execute_sqlite(&mut self.conn, &rows).await?;
        // Compare-and-set: a second projector that raced us fails here
        // instead of moving the checkpoint twice.
        let moved = sqlx::query(
            "INSERT INTO projector_checkpoints (projection, position) VALUES (?, ?)
             ON CONFLICT (projection) DO UPDATE SET position = excluded.position
             WHERE projector_checkpoints.position = ?",
        )
        .bind(PROJECTION)
        .bind(last.position)
        .bind(from.position)
        .execute(&mut self.conn)
        .await?;
        if moved.rows_affected() == 1 {
            Ok(())
        } else {
            Err(ProjectorError::Sql(sqlx::Error::Protocol(
                "checkpoint moved under the projector".into(),
            )))
        }
    }

    /// Projects until idle, then waits for a commit of this process (the
    /// committer's signal) or of another one (`PRAGMA data_version`
    /// changes when another connection commits), until `shutdown` fires.
    pub async fn run_until_stopped(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut commits = self.store.commits();
        let mut seen_version = None;
        let mut tick = tokio::time::interval(self.check_interval);
        loop {
            match self.project_next().await {
                Ok(Outcome::Projected { .. }) => continue,
                Ok(Outcome::Idle) => {}
                Err(ProjectorError::Poison(why)) => {
                    tracing::error!(projection = PROJECTION, reason = %why, "projection stopped on an event it cannot read");
                    self.stopped.store(true, Ordering::Relaxed);
                    return;
                }
                Err(err) => tracing::warn!(error = %err, "projector step failed; retrying"),
            }
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = commits.changed() => break,
                    _ = tick.tick() => {
                        let version: Option<i64> = sqlx::query_scalar("PRAGMA data_version")
                            .fetch_one(&mut self.conn)
                            .await
                            .ok();
                        if version != seen_version {
                            seen_version = version;
                            break;
                        }
                    }
                }
            }
        }
    }
}
