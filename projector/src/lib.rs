//! The asynchronous projector: tails the log in global order and maintains
//! the tables that need not be current to the command (for now the audit
//! index), rows and checkpoint in one transaction. One testable step,
//! [`Projector::project_next`], in a loop, [`Projector::run_until_stopped`].

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod audit;
mod metrics;
mod policies;
mod rebuild;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use writ_infra::store::inline::ApplyError;
use writ_infra::store::statement::Statement;
use writ_infra::store::{Conn, Cursor, Dialect, RowExt, Store, StoredEvent, Target};

pub use metrics::ProjectorMetrics;
pub use policies::Policies;
pub use rebuild::{rebuild_and_compare, TableDifference};

const PROJECTION: &str = "audit_index";
const BATCH: i64 = 1000;
/// A projector transaction's target length (design: about 50 ms).
const SLICE: Duration = Duration::from_millis(50);
/// Events applied between two looks at the slice's clock.
const SLICE_CHUNK: usize = 250;
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
    metrics: Arc<ProjectorMetrics>,
    /// `recorded_at` of the last event projected, for the lag gauge.
    last_recorded_at: Option<String>,
    lag_measured_at: Option<Instant>,
    /// On PostgreSQL only the holder of [`LEADER_LOCK`] projects; its rows
    /// and checkpoints go through the connection that holds the lock, so
    /// a former leader that lost it cannot write.
    leading: bool,
}

/// How often the lag in events is counted while catching up.
const LAG_MEASURE_INTERVAL: Duration = Duration::from_millis(500);
/// The session-level advisory lock whose holder is the active projector.
const LEADER_LOCK: i64 = 0x0057_5249_5450_524f; // "WRITPRO"
/// How often a standby tries the lock.
const STANDBY_POLL: Duration = Duration::from_millis(500);
/// The lock connection's keepalives (user-settable on the server): a
/// holder whose host vanished is noticed in about 3 s.
const KEEPALIVES: &str = "SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 2; SET tcp_user_timeout = 3000";

impl Projector {
    pub async fn new(store: Store, check_interval: Duration) -> Result<Self, ProjectorError> {
        let conn = Conn::connect(store.target()).await?;
        Ok(Self {
            store,
            conn,
            check_interval,
            policies: None,
            metrics: Arc::default(),
            last_recorded_at: None,
            lag_measured_at: None,
            leading: false,
        })
    }

    /// Whether this projector may project: always on SQLite (one process
    /// owns the file); on PostgreSQL while it holds the leader lock.
    async fn lead(&mut self) -> Result<bool, ProjectorError> {
        if self.conn.dialect() == Dialect::Sqlite || self.leading {
            return Ok(true);
        }
        let row = self
            .conn
            .fetch_optional(
                &Statement::new("SELECT pg_try_advisory_lock($1)::int AS held").int(LEADER_LOCK),
            )
            .await?;
        self.leading = row.and_then(|r| r.int("held")) == Some(1);
        if self.leading {
            ProjectorMetrics::set(&self.metrics.active, 1);
            tracing::info!("this projector is now the active one");
        }
        Ok(self.leading)
    }

    /// After a storage error the connection may be gone, and the lock with
    /// it: reconnect and stand by until the lock is won again.
    async fn reconnect(&mut self) {
        self.leading = false;
        ProjectorMetrics::set(&self.metrics.active, 0);
        match Conn::connect(self.store.target()).await {
            Ok(mut conn) => {
                if conn.dialect() == Dialect::Postgres {
                    let _ = conn.batch(KEEPALIVES).await;
                }
                self.conn = conn;
            }
            Err(err) => tracing::warn!(error = %err, "projector cannot reconnect; retrying"),
        }
    }

    pub fn metrics(&self) -> Arc<ProjectorMetrics> {
        self.metrics.clone()
    }

    /// Updates the lag gauges after a step; counting runs at most every
    /// [`LAG_MEASURE_INTERVAL`] so catching up is not slowed by it.
    async fn measure_lag(&mut self, outcome: &Outcome) {
        let (lag_events, lag_micros) = match outcome {
            Outcome::Idle => (0, 0),
            Outcome::Projected { through, events } => {
                self.metrics
                    .events_projected
                    .fetch_add(*events as u64, std::sync::atomic::Ordering::Relaxed);
                if self
                    .lag_measured_at
                    .is_some_and(|at| at.elapsed() < LAG_MEASURE_INTERVAL)
                {
                    return;
                }
                self.lag_measured_at = Some(Instant::now());
                let behind = self
                    .store
                    .db()
                    .scalar_i64(
                        &Statement::new("SELECT count(*) FROM events WHERE position > $1")
                            .int(through.position),
                    )
                    .await
                    .unwrap_or(0);
                let age = self
                    .last_recorded_at
                    .as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| {
                        (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                            .num_microseconds()
                            .unwrap_or(0)
                    })
                    .unwrap_or(0);
                (behind.max(0) as u64, age.max(0) as u64)
            }
        };
        ProjectorMetrics::set(&self.metrics.lag_events, lag_events);
        ProjectorMetrics::set(&self.metrics.lag_micros, lag_micros);
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
            if let Some(rows) = audit::rows(schema, chunk)? {
                self.conn.execute(&[rows]).await?;
            }
            count += chunk.len();
            last = chunk.last().map(StoredEvent::cursor).unwrap_or(last);
            self.last_recorded_at = chunk.last().map(|e| e.recorded_at.clone());
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
        if self.conn.dialect() == Dialect::Postgres {
            let _ = self.conn.batch(KEEPALIVES).await;
        }
        loop {
            match self.lead().await {
                Ok(true) => {}
                Ok(false) => {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(STANDBY_POLL) => continue,
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "projector lost its connection; reconnecting");
                    self.reconnect().await;
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(STANDBY_POLL) => continue,
                    }
                }
            }
            let step = self.project_next().await;
            if let Ok(outcome) = &step {
                self.measure_lag(outcome).await;
            }
            match step {
                Ok(Outcome::Projected { .. }) => {
                    held_back_since = None;
                    continue;
                }
                Ok(Outcome::Idle) => {
                    self.run_policies().await;
                    self.report_held_back(&mut held_back_since).await
                }
                Err(ProjectorError::Poison(why)) => {
                    ProjectorMetrics::set(&self.metrics.stopped, 1);
                    tracing::error!(projection = PROJECTION, reason = %why, "projection stopped on an event it cannot read");
                    // Stay up (health, metrics) until told to stop; the
                    // projection resumes only after an upgrade or a fix.
                    let _ = shutdown.changed().await;
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "projector step failed; reconnecting");
                    self.reconnect().await;
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(STANDBY_POLL) => continue,
                    }
                }
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
