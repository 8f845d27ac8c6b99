//! The asynchronous projector: tails the log in global order and maintains
//! the tables that need not be current to the command (the audit index and
//! the token status lists' bits), rows and checkpoint in one transaction. One testable step,
//! [`Projector::project_next`], in a loop, [`Projector::run_until_stopped`].

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod audit;
pub mod backchannel;
mod bulk;
mod leadership;
mod logouts;
mod metrics;
mod policies;
mod progress;
mod publisher;
mod rebuild;
pub mod replay;
mod run;
pub mod ssf_push;
mod status_flips;
pub mod swap;

use std::sync::Arc;
use std::time::{Duration, Instant};

use writ_store::inline::ApplyError;
use writ_store::statement::Statement;
use writ_store::{Conn, Cursor, Dialect, EventHeader, RowExt, Store, Target};

pub use metrics::ProjectorMetrics;
pub use policies::{Policies, DEFAULT_LOGOUT_RETRY_FOR};
pub use publisher::{Publisher, PublisherMetrics, CHECKPOINT as PUBLISHER_CHECKPOINT};
pub use rebuild::{
    rebuild_and_compare, rebuild_and_compare_with_progress, RowDifference, Side, TableDifference,
};

const PROJECTION: &str = "audit_index";
const BATCH: i64 = 2000;
/// A projector transaction's target length (design: about 50 ms).
const SLICE: Duration = Duration::from_millis(50);
/// Events applied between two looks at the slice's clock.
const SLICE_CHUNK: usize = 500;
/// On SQLite, while keeping up and commands wait for the committer, a
/// slice begins at most this often. The projector and the committer take
/// turns at the one write lock ([`writ_store::WriteTurn`]); a slice after
/// every batch of commands doubled the transactions the committer waited
/// behind (issuance p50 at 5,500/s 1.6 → 4–7 ms), while one every 20 ms
/// holds it up about a millisecond at a time and leaves the audit index,
/// the status bits and the policies that far behind.
const SQLITE_SPACING: Duration = Duration::from_millis(20);

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
    #[error("Kafka: {0}")]
    Kafka(String),
    /// A request that cannot be carried out as asked (a bad snapshot name,
    /// one that exists).
    #[error("{0}")]
    Invalid(String),
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

/// Moves a checkpoint from `from` to `to`, compare-and-set: a second
/// projector that raced this one fails here instead of moving it twice.
pub(crate) async fn advance_checkpoint(
    conn: &mut Conn,
    projection: &str,
    from: Cursor,
    to: Cursor,
) -> Result<(), ProjectorError> {
    let checkpoint = Statement::new(
        "INSERT INTO projector_checkpoints (projection, txid, position) VALUES ($1, $2, $3)
         ON CONFLICT (projection) DO UPDATE SET txid = excluded.txid, position = excluded.position
         WHERE projector_checkpoints.txid = $4 AND projector_checkpoints.position = $5",
    )
    .text(projection)
    .int(to.txid)
    .int(to.position)
    .int(from.txid)
    .int(from.position);
    if conn.execute(&[checkpoint]).await? == 1 {
        Ok(())
    } else {
        Err(ProjectorError::Sql(sqlx::Error::Protocol(format!(
            "checkpoint {projection} moved under the projector"
        ))))
    }
}

/// [`advance_checkpoint`] as a transaction of its own, in turn with the
/// committer: waiting for SQLite's write lock on its back-off, this write
/// lost to a busy committer for up to a second (see [`writ_store::WriteTurn`]).
pub(crate) async fn advance_checkpoint_alone(
    store: &Store,
    conn: &mut Conn,
    projection: &str,
    from: Cursor,
    to: Cursor,
) -> Result<(), ProjectorError> {
    let _turn = store.write_turn().await;
    advance_checkpoint(conn, projection, from, to).await
}

/// A projector's or publisher's own connection. On SQLite its commits skip
/// the WAL's fsync (`synchronous = NORMAL`): what it writes is derived
/// from the log and moves with its checkpoint in one transaction (or is
/// the checkpoint alone), so a crash of the machine can only take back the
/// newest transactions whole, and they are projected again; and the
/// committer's next fsync of the same WAL makes them durable anyway. Slices
/// that flip status bits, which relying parties are shown, are the
/// exception ([`Projector::project_next`]). It never checkpoints the WAL
/// inside its COMMIT ([`Conn::connect_beside_committer`]); a projector
/// catching up alone copies after its slice, outside the write turn.
pub(crate) async fn connect_projection(target: &Target) -> Result<Conn, sqlx::Error> {
    let mut conn = Conn::connect_beside_committer(target).await?;
    if conn.dialect() == Dialect::Sqlite {
        conn.batch("PRAGMA synchronous = NORMAL").await?;
    }
    Ok(conn)
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
    /// The slice after the one being written, read meanwhile on another
    /// connection while catching up.
    prefetched: Option<(Cursor, Prefetch)>,
    /// When the last slice's transaction began, and whether commands were
    /// waiting for the committer as it ended (see [`SQLITE_SPACING`]).
    last_slice_started: Option<Instant>,
    commands_waited: bool,
    /// The SQLite connection's `synchronous` level is FULL (see
    /// [`connect_projection`]).
    synchronous_full: bool,
}

type Prefetch = tokio::task::JoinHandle<Result<Vec<EventHeader>, sqlx::Error>>;

/// Up to how many events behind the lag is counted exactly.
const EXACT_LAG: i64 = 10_000;
/// How often the lag in events is counted while catching up.
const LAG_MEASURE_INTERVAL: Duration = Duration::from_millis(500);
impl Projector {
    pub async fn new(store: Store, check_interval: Duration) -> Result<Self, ProjectorError> {
        let conn = connect_projection(store.target()).await?;
        Ok(Self {
            store,
            conn,
            check_interval,
            policies: None,
            metrics: Arc::default(),
            last_recorded_at: None,
            lag_measured_at: None,
            leading: false,
            prefetched: None,
            last_slice_started: None,
            commands_waited: false,
            synchronous_full: false,
        })
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
                self.metrics.events_projected.inc_by(*events as u64);
                if self
                    .lag_measured_at
                    .is_some_and(|at| at.elapsed() < LAG_MEASURE_INTERVAL)
                {
                    return;
                }
                self.lag_measured_at = Some(Instant::now());
                let behind = self.events_behind(*through).await;
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
                (behind.max(0), age.max(0))
            }
        };
        self.metrics.lag_events.set(lag_events);
        self.metrics.lag_seconds.set(lag_micros as f64 / 1e6);
    }

    /// Events after `through`: counted exactly up to [`EXACT_LAG`], beyond
    /// which counting would cost the catch-up it measures, so the identity
    /// values' difference stands in (rolled-back inserts make it a slight
    /// overcount). In position order, so that PostgreSQL walks the index
    /// from `through`: unordered, its log showed this count scanning the
    /// whole log under load.
    async fn events_behind(&self, through: Cursor) -> i64 {
        let db = self.store.db();
        let counted = db
            .scalar_i64(
                &Statement::new(
                    "SELECT count(*) FROM (SELECT 1 FROM events WHERE position > $1 ORDER BY position LIMIT $2) AS behind",
                )
                .int(through.position)
                .int(EXACT_LAG),
            )
            .await
            .unwrap_or(0);
        if counted < EXACT_LAG {
            return counted;
        }
        db.scalar_i64(
            &Statement::new("SELECT coalesce(max(position), 0) - $1 FROM events")
                .int(through.position),
        )
        .await
        .unwrap_or(counted)
    }

    /// Also runs the cross-aggregate policies, which issue commands; a
    /// relying party's logout token is retried for `logout_retry_for`.
    pub fn with_policies(
        mut self,
        executor: writ_store::Executor,
        logout_retry_for: Duration,
    ) -> Self {
        self.policies = Some(
            Policies::new(self.store.clone(), executor).with_logout_retry_for(logout_retry_for),
        );
        self
    }

    /// Runs the policies until they have seen every event the audit index
    /// has (`through`, its checkpoint), or for at most `steps` steps: one
    /// after every slice, since under load the projector seldom idles, and
    /// the rest when it does.
    async fn run_policies(&mut self, through: Cursor, steps: usize) {
        let Some(policies) = &self.policies else {
            return;
        };
        for _ in 0..steps {
            match policies.step(&mut self.conn, through).await {
                Ok(0) => return,
                Ok(_) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "policy step failed; retrying at the next wake-up");
                    return;
                }
            }
        }
    }

    /// When the next slice may begin after one of `events`: on SQLite, a
    /// slice that reached the head waits out [`SQLITE_SPACING`] while
    /// commands wait for the committer; catching up, or with nobody
    /// waiting, the next one goes at once.
    fn next_slice_at(&self, events: usize) -> Option<Instant> {
        let keeping_up = events < BATCH as usize;
        match (self.conn.dialect(), keeping_up && self.commands_waited) {
            (Dialect::Sqlite, true) => self.last_slice_started.map(|at| at + SQLITE_SPACING),
            _ => None,
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
        let headers = self.headers_after(from).await?;
        if headers.is_empty() {
            return Ok(Outcome::Idle);
        }
        // Up to the first event this version cannot read, which stops the
        // projection once everything before it is indexed.
        let mut readable = headers.len();
        for (index, header) in headers.iter().enumerate() {
            if let Err(unknown) = audit::check_known(header) {
                if index == 0 {
                    return Err(unknown.into());
                }
                readable = index;
                break;
            }
        }
        if readable == headers.len() && readable == BATCH as usize {
            let next = headers[readable - 1].cursor();
            let store = self.store.clone();
            let task = tokio::spawn(async move { store.headers_after(next, BATCH).await });
            self.prefetched = Some((next, task));
        }
        // A status bit, once a relying party may have seen it, must survive
        // a crash of the machine (ADR 0031): such a slice is fsynced.
        let sqlite = self.conn.dialect() == Dialect::Sqlite;
        let durable = sqlite && status_flips::any(&headers[..readable]);
        if sqlite && durable != self.synchronous_full {
            let level = if durable { "FULL" } else { "NORMAL" };
            self.conn
                .batch(&format!("PRAGMA synchronous = {level}"))
                .await?;
            self.synchronous_full = durable;
        }
        let turn = self.store.write_turn().await;
        self.last_slice_started = Some(Instant::now());
        self.conn.begin_write().await?;
        match self.apply_slice(&headers[..readable], from).await {
            Ok((count, last)) => {
                let slice = &headers[..count];
                // A slice without consequences moves the policies' checkpoint
                // in its own commit; one with them, after it, since the
                // revocations are commands of their own.
                let consequential = Policies::has_triggers(slice);
                if let (Some(policies), false) = (&self.policies, consequential) {
                    let inside = policies::Turn::Held;
                    if let Err(err) = policies.follow(&mut self.conn, from, slice, inside).await {
                        let _ = self.conn.batch("ROLLBACK").await;
                        return Err(err);
                    }
                }
                // Read while the committer waits for the turn: once it has
                // the turn it takes everything queued into its batch.
                self.commands_waited = self.store.queued_appends() > 0;
                if let Err(err) = self.conn.batch("COMMIT").await {
                    // A failed COMMIT may leave the transaction open (SQLite
                    // after SQLITE_BUSY), write lock and all, with the
                    // committer behind it; SQLite asks for a ROLLBACK, which
                    // is harmless where it rolled back already.
                    let _ = self.conn.batch("ROLLBACK").await;
                    return Err(err.into());
                }
                // Before the policies' revocations, which are the committer's.
                drop(turn);
                // Slices cut by time end on whole chunks.
                if sqlite && count >= SLICE_CHUNK {
                    // Catching up, perhaps with no committer to copy the WAL.
                    if let Err(err) = self.conn.batch("PRAGMA wal_checkpoint(PASSIVE)").await {
                        tracing::warn!(error = %err, "WAL checkpoint after a slice failed");
                    }
                }
                if let (Some(policies), true) = (&self.policies, consequential) {
                    let after = policies::Turn::Take;
                    if let Err(err) = policies.follow(&mut self.conn, from, slice, after).await {
                        tracing::warn!(error = %err, "policy step failed; retrying after the next slice");
                    }
                }
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

    /// The headers after `from`: the prefetched slice when it starts there
    /// and holds events (an empty one may be stale), else a fresh read.
    async fn headers_after(&mut self, from: Cursor) -> Result<Vec<EventHeader>, sqlx::Error> {
        if let Some((at, task)) = self.prefetched.take() {
            if at != from {
                task.abort();
            } else if let Ok(Ok(headers)) = task.await {
                if !headers.is_empty() {
                    return Ok(headers);
                }
            }
        }
        self.store.headers_after(from, BATCH).await
    }

    async fn apply_slice(
        &mut self,
        headers: &[EventHeader],
        from: Cursor,
    ) -> Result<(usize, Cursor), ProjectorError> {
        let dialect = self.conn.dialect();
        let schema = dialect.live_schema();
        let started = Instant::now();
        let mut last = from;
        let mut count = 0;
        for chunk in headers.chunks(SLICE_CHUNK) {
            let through = chunk.last().map(EventHeader::cursor).unwrap_or(last);
            let positions: Vec<i64> = chunk.iter().map(|header| header.position).collect();
            let indexed = self
                .conn
                .execute(&[audit::audit_index_rows(dialect, schema, schema, &positions)])
                .await?;
            if indexed != chunk.len() as u64 {
                return Err(ProjectorError::Sql(sqlx::Error::Protocol(format!(
                    "indexed {indexed} events where the log showed {} up to {through}",
                    chunk.len()
                ))));
            }
            // Only an approval or denial gives a grant its subject late.
            let arrivals: Vec<i64> = chunk
                .iter()
                .filter(|header| audit::SUBJECT_ARRIVES.contains(&header.event_type.as_str()))
                .map(|header| header.position)
                .collect();
            if !arrivals.is_empty() {
                self.conn
                    .execute(&[audit::audit_subject_backfill(
                        dialect,
                        schema,
                        schema,
                        Some(&arrivals),
                    )])
                    .await?;
            }
            status_flips::flip(&mut self.conn, schema, chunk).await?;
            count += chunk.len();
            last = through;
            self.last_recorded_at = chunk.last().map(|e| e.recorded_at.clone());
            if started.elapsed() >= SLICE {
                break;
            }
        }
        advance_checkpoint(&mut self.conn, PROJECTION, from, last).await?;
        Ok((count, last))
    }
}
