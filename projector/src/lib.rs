//! The asynchronous projector: tails the log in global order and maintains
//! the tables that need not be current to the command (for now the audit
//! index), rows and checkpoint in one transaction. One testable step,
//! [`Projector::project_next`], in a loop, [`Projector::run_until_stopped`].

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod audit;
mod policies;
mod rebuild;

use std::time::{Duration, Instant};

use tokio::sync::watch;
use writ_infra::store::inline::ApplyError;
use writ_infra::store::statement::Statement;
use writ_infra::store::{Conn, Cursor, Dialect, RowExt, Store, StoredEvent, Target};

pub use policies::Policies;
pub use rebuild::{rebuild_and_compare, TableDifference};

const PROJECTION: &str = "audit_index";
const BATCH: i64 = 500;
/// A projector transaction's target length (design: about 50 ms).
const SLICE: Duration = Duration::from_millis(50);
/// Events applied between two looks at the slice's clock.
const SLICE_CHUNK: usize = 50;
/// How long the global-order bound may hold the projector back before the
/// backend holding it is named in the log.
const HELD_BACK_WARNING: Duration = Duration::from_secs(5);

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
    fn from(unknown: ApplyError) -> Self {
        Self::Poison(unknown.to_string())
    }
}

/// Where a projection (or the policies) has got to in the log.
pub(crate) async fn read_checkpoint(
    conn: &mut Conn,
    projection: &str,
) -> Result<Cursor, ProjectorError> {
    let row = conn
        .fetch_optional(
            &Statement::new(
                "SELECT txid, position FROM projector_checkpoints WHERE projection = $1",
            )
            .text(projection),
        )
        .await?;
    Ok(row
        .map(|r| Cursor {
            txid: r.int("txid").unwrap_or(0),
            position: r.int("position").unwrap_or(0),
        })
        .unwrap_or_default())
}

pub struct Projector {
    store: Store,
    conn: Conn,
    check_interval: Duration,
    policies: Option<Policies>,
}

impl Projector {
    pub async fn new(store: Store, check_interval: Duration) -> Result<Self, ProjectorError> {
        let conn = Conn::connect(store.target()).await?;
        Ok(Self {
            store,
            conn,
            check_interval,
            policies: None,
        })
    }

    /// Also runs the cross-aggregate policies, which issue commands.
    pub fn with_policies(mut self, executor: writ_infra::Executor) -> Self {
        self.policies = Some(Policies::new(self.store.clone(), executor));
        self
    }

    /// Runs the policies until they have seen every committed event.
    async fn run_policies(&mut self) {
        let Some(policies) = &self.policies else {
            return;
        };
        loop {
            match policies.step(&mut self.conn).await {
                Ok(0) => return,
                Ok(_) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "policy step failed; retrying at the next wake-up");
                    return;
                }
            }
        }
    }

    pub async fn checkpoint(&mut self) -> Result<Cursor, ProjectorError> {
        read_checkpoint(&mut self.conn, PROJECTION).await
    }

    /// Projects the next slice after the checkpoint, rows and checkpoint in
    /// one transaction, or reports that there is nothing to do. A slice
    /// ends after [`BATCH`] events or about [`SLICE`], whichever comes
    /// first, so its transaction never holds PostgreSQL's global-order
    /// bound back for long.
    pub async fn project_next(&mut self) -> Result<Outcome, ProjectorError> {
        let from = self.checkpoint().await?;
        let events = self.store.events_after(from, BATCH).await?;
        if events.is_empty() {
            return Ok(Outcome::Idle);
        }
        self.conn.begin_write().await?;
        match self.apply_slice(&events, from).await {
            Ok((count, last)) => {
                self.conn.batch("COMMIT").await?;
                Ok(Outcome::Projected {
                    events: count,
                    through: last,
                })
            }
            Err(err) => {
                let _ = self.conn.batch("ROLLBACK").await;
                Err(err)
            }
        }
    }

    async fn apply_slice(
        &mut self,
        events: &[StoredEvent],
        from: Cursor,
    ) -> Result<(usize, Cursor), ProjectorError> {
        let schema = self.conn.dialect().live_schema();
        let started = Instant::now();
        let mut last = from;
        let mut count = 0;
        for chunk in events.chunks(SLICE_CHUNK) {
            let rows = chunk
                .iter()
                .map(|event| audit::statement(schema, event))
                .collect::<Result<Vec<_>, _>>()?;
            self.conn.execute(&rows).await?;
            count += chunk.len();
            last = chunk.last().map(StoredEvent::cursor).unwrap_or(last);
            if started.elapsed() >= SLICE {
                break;
            }
        }
        // Compare-and-set: a second projector that raced us fails here
        // instead of moving the checkpoint twice.
        let checkpoint = Statement::new(
            "INSERT INTO projector_checkpoints (projection, txid, position) VALUES ($1, $2, $3)
             ON CONFLICT (projection) DO UPDATE SET txid = excluded.txid, position = excluded.position
             WHERE projector_checkpoints.txid = $4 AND projector_checkpoints.position = $5",
        )
        .text(PROJECTION)
        .int(last.txid)
        .int(last.position)
        .int(from.txid)
        .int(from.position);
        if self.conn.execute(&[checkpoint]).await? == 1 {
            Ok((count, last))
        } else {
            Err(ProjectorError::Sql(sqlx::Error::Protocol(
                "checkpoint moved under the projector".into(),
            )))
        }
    }

    /// Projects until idle, then waits for a commit of this process (the
    /// committer's signal) or of another one: on SQLite `PRAGMA
    /// data_version` changes when another connection commits; on PostgreSQL
    /// the committer's NOTIFY arrives. Stops when `shutdown` fires.
    pub async fn run_until_stopped(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut commits = self.store.commits();
        let mut notifications = match self.store.target() {
            Target::Postgres(url) => match sqlx::postgres::PgListener::connect(url).await {
                Ok(mut listener) => listener
                    .listen(writ_infra::store::COMMIT_CHANNEL)
                    .await
                    .ok()
                    .map(|()| listener),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot LISTEN for commits; checking every interval instead");
                    None
                }
            },
            Target::Sqlite(_) => None,
        };
        let mut seen_version = None;
        let mut tick = tokio::time::interval(self.check_interval);
        let mut held_back_since: Option<Instant> = None;
        loop {
            match self.project_next().await {
                Ok(Outcome::Projected { .. }) => {
                    held_back_since = None;
                    continue;
                }
                Ok(Outcome::Idle) => {
                    self.run_policies().await;
                    self.report_held_back(&mut held_back_since).await
                }
                Err(ProjectorError::Poison(why)) => {
                    tracing::error!(projection = PROJECTION, reason = %why, "projection stopped on an event it cannot read");
                    return;
                }
                Err(err) => tracing::warn!(error = %err, "projector step failed; retrying"),
            }
            loop {
                let notified = async {
                    match notifications.as_mut() {
                        Some(listener) => listener.recv().await.map(drop),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = commits.changed() => break,
                    _ = notified => break,
                    _ = tick.tick() => {
                        if self.conn.dialect() == Dialect::Postgres {
                            break;
                        }
                        let version = self.conn.fetch_optional(&Statement::new("PRAGMA data_version")).await.ok().flatten();
                        if version != seen_version {
                            seen_version = version;
                            break;
                        }
                    }
                }
            }
        }
    }

    /// On PostgreSQL, committed events above the global-order bound wait
    /// for an older open transaction; after a few seconds name it.
    async fn report_held_back(&mut self, since: &mut Option<Instant>) {
        match self.store.global_order_holder().await {
            Ok(Some(holder)) => {
                let started = *since.get_or_insert_with(Instant::now);
                if started.elapsed() >= HELD_BACK_WARNING {
                    tracing::warn!(holder = %holder, waited_secs = started.elapsed().as_secs(), "the projector is held back by an open transaction");
                    *since = Some(Instant::now());
                }
            }
            _ => *since = None,
        }
    }
}
