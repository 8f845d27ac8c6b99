//! The event log and read tables, on embedded SQLite or on PostgreSQL.
//! Reads of one stream go through sqlite-es or postgres-es over their own
//! tables; appends go through Writ's committer, which the crates'
//! one-transaction-per-call `persist` cannot do. The executor decides
//! commands against the log; the views are the only SQL against the read
//! tables; replay support and the signed checkpoints live here too.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod chain;
pub mod change;
pub mod coalesce;
mod committer;
mod conn;
mod embedded;
mod event_rows;
pub mod executor;
pub mod fold;
mod heads;
pub mod inline;
pub mod memory;
pub mod metrics;
pub mod migrations;
mod reader;
mod repository;
mod restored;
pub mod schema;
pub mod seal;
pub mod services;
pub mod statement;
pub mod views;
mod watchers;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::SerializedEvent;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::ConnectOptions;
use tokio::sync::{mpsc, oneshot, watch};

pub use chain::{link as chain_link, verify_chains, ChainBreak, RowForHash, GENESIS};
pub use committer::{AppendError, AppendReceipt, SideWrite, DEFAULT_MAX_BATCH};
pub use conn::{Conn, Db, Dialect, Row, RowExt, Target, PING_AFTER_IDLE};
pub use executor::{Committed, ExecuteError, Executor, Metadata};
pub use reader::{after_cursor, EventHeader};
pub use repository::WritRepository;
pub use writ_domain::cursor::{Cursor, START};

use crate::metrics::Metrics;
use statement::Statement;

/// The channel the committer NOTIFYs on PostgreSQL after each batch.
pub const COMMIT_CHANNEL: &str = "writ_events";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {0} is not usable: {1}")]
    DataDir(String, String),
    #[error("database {0} is unavailable: {1}")]
    Unavailable(String, String),
    #[error("database {0} cannot be migrated: {1}")]
    Migrations(String, String),
    #[error("database {0} cannot be used: {1}")]
    Restored(String, String),
}

/// One event as stored: the row plus its place in the global order.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The writing transaction on PostgreSQL; 0 on SQLite.
    pub txid: i64,
    pub position: i64,
    pub recorded_at: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub hash: String,
}

impl StoredEvent {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            txid: self.txid,
            position: self.position,
        }
    }

    pub fn from_row(row: &Row) -> Result<Self, sqlx::Error> {
        Self::from_owned_row(row.clone())
    }

    /// [`StoredEvent::from_row`], moving the row's values instead of
    /// copying them (a verification reads every event of the log).
    pub fn from_owned_row(mut row: Row) -> Result<Self, sqlx::Error> {
        Ok(Self {
            txid: row.int("txid").unwrap_or(0),
            position: row.int("position").ok_or_else(|| missing("position"))?,
            sequence: row.int("sequence").ok_or_else(|| missing("sequence"))?,
            recorded_at: take_text(&mut row, "recorded_at")?,
            aggregate_type: take_text(&mut row, "aggregate_type")?,
            aggregate_id: take_text(&mut row, "aggregate_id")?,
            event_type: take_text(&mut row, "event_type")?,
            event_version: take_text(&mut row, "event_version")?,
            payload: take_json(&mut row, "payload")?,
            metadata: take_json(&mut row, "metadata")?,
            hash: take_text(&mut row, "hash")?,
        })
    }
}

fn take_text(row: &mut Row, column: &str) -> Result<String, sqlx::Error> {
    match row.remove(column) {
        Some(Value::String(text)) => Ok(text),
        _ => Err(missing(column)),
    }
}

/// SQLite stores JSON as text; PostgreSQL's `json` arrives parsed.
fn take_json(row: &mut Row, column: &str) -> Result<Value, sqlx::Error> {
    match row.remove(column) {
        Some(Value::String(text)) => {
            serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
        }
        Some(value) => Ok(value),
        None => Err(missing(column)),
    }
}

fn missing(column: &str) -> sqlx::Error {
    sqlx::Error::ColumnNotFound(column.to_owned())
}

/// The event columns in the shape [`StoredEvent::from_row`] reads, with
/// PostgreSQL's `xid8` and `timestamptz` rendered as integer and text.
pub fn event_columns(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "0 AS txid, position, recorded_at, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, hash"
        }
        Dialect::Postgres => {
            "txid::text::bigint AS txid, position, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS recorded_at, \
             aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, hash"
        }
    }
}

/// Global order, as an `ORDER BY` list. Qualified on purpose: a bare
/// `txid` would name the selected `txid::text::bigint`, which no index
/// serves, and every read of the tail would sort the whole log.
pub fn log_order(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "events.position",
        Dialect::Postgres => "events.txid, events.position",
    }
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    db: Db,
    appends: mpsc::Sender<AppendRequest>,
    committed: watch::Receiver<Cursor>,
    watchers: watchers::Watchers,
    metrics: Arc<Metrics>,
    migrations: migrations::MigrationReport,
    memory: Option<Arc<memory::Memory>>,
    write_turn: Option<WriteTurn>,
}

/// SQLite's one write lock, taken in turn by this process's writers (the
/// committer, the projector and its checkpoints), first come first served.
/// Without it a projector's `BEGIN IMMEDIATE`, polling on SQLite's back-off
/// (1, 2, 5, … 100 ms), lost to a committer that is rarely idle under load:
/// it fell seconds behind, then held the lock for slices of 2,000 events
/// (12–34 ms) while every request waited (issuance p99 21–57 ms at 70 % of
/// the maximum). ADR 0035.
pub type WriteTurn = Arc<tokio::sync::Mutex<()>>;

use committer::AppendRequest;

impl Store {
    /// Opens (creating if needed) `<data_dir>/writ.db`, applies migrations
    /// and starts the committer task.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_sqlite_with(data_dir, DEFAULT_MAX_BATCH).await
    }

    /// `max_batch` 1 turns group commit off (one command per transaction),
    /// which the append benchmark compares against.
    pub async fn open_sqlite_with(data_dir: &Path, max_batch: usize) -> Result<Self, StoreError> {
        let shown = data_dir.display().to_string();
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::DataDir(shown.clone(), e.to_string()))?;
        let database = data_dir.join("writ.db");
        let target = Target::Sqlite(database.clone());
        let writer = Conn::connect(&target)
            .await
            .map_err(|e| StoreError::DataDir(shown.clone(), e.to_string()))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(connect_options(&database).read_only(true));
        Self::start(target, writer, max_batch, async {
            readers.await.map(Db::Sqlite)
        })
        .await
    }

    /// Connects to PostgreSQL with Writ's own pool (no panics on failure),
    /// applies migrations and starts the committer task.
    pub async fn open_postgres(url: &str, max_batch: usize) -> Result<Self, StoreError> {
        let target = Target::Postgres(url.to_owned());
        let shown = target.describe();
        let writer = Conn::connect(&target)
            .await
            .map_err(|e| StoreError::Unavailable(shown.clone(), e.to_string()))?;
        Self::start(target, writer, max_batch, async {
            Db::connect_postgres(url, 8).await.map(Db::Postgres)
        })
        .await
    }

    async fn start(
        target: Target,
        mut writer: Conn,
        max_batch: usize,
        readers: impl std::future::Future<Output = Result<Db, sqlx::Error>>,
    ) -> Result<Self, StoreError> {
        let shown = target.describe();
        if let Conn::Postgres(conn) = &mut writer {
            restored::ensure_cluster_is_ahead(conn)
                .await
                .map_err(|why| StoreError::Restored(shown.clone(), why))?;
        }
        let migrations = migrations::migrate(&mut writer)
            .await
            .map_err(|e| StoreError::Migrations(shown.clone(), e.to_string()))?;
        if !migrations.adopted.is_empty() {
            tracing::info!(versions = ?migrations.adopted, "recorded an earlier Writ's migrations as applied");
        }
        for (version, description) in &migrations.applied {
            tracing::info!(version, description, "applied migration");
        }
        let db = readers
            .await
            .map_err(|e| StoreError::Unavailable(shown, e.to_string()))?;
        let memory = match &target {
            Target::Sqlite(path) => {
                Some(Arc::new(memory::Memory::open(path).map_err(|e| {
                    StoreError::Unavailable(target.describe(), e.to_string())
                })?))
            }
            Target::Postgres(_) => None,
        };
        let metrics = Arc::new(Metrics::default());
        let (appends, requests) = mpsc::channel(4096);
        let (committed_tx, committed) = watch::channel(START);
        let watchers = watchers::Watchers::default();
        let write_turn = (target.dialect() == Dialect::Sqlite).then(WriteTurn::default);
        let committer = committer::Committer {
            target: target.clone(),
            metrics: metrics.clone(),
            committed: committed_tx,
            watchers: watchers.clone(),
            max_batch: max_batch.max(1),
            memory: memory.clone(),
            write_turn: write_turn.clone(),
        };
        match target {
            Target::Postgres(_) => {
                tokio::spawn(committer.run(writer, requests));
            }
            Target::Sqlite(_) => {
                // sqlx's connection ran the migrations; the committer's is
                // rusqlite, inline on its own thread (ADR 0025).
                drop(writer);
                let inline = Conn::connect_committer(&target)
                    .await
                    .map_err(|e| StoreError::Unavailable(target.describe(), e.to_string()))?;
                committer
                    .run_on_own_thread(inline, requests)
                    .map_err(|e| StoreError::Unavailable(target.describe(), e.to_string()))?;
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                target,
                db,
                appends,
                committed,
                watchers,
                metrics,
                migrations,
                memory,
                write_turn,
            }),
        })
    }

    /// Waits for this process's turn at SQLite's write lock (see
    /// [`WriteTurn`]); hold it from `BEGIN IMMEDIATE` to `COMMIT`. Nothing to
    /// wait for on PostgreSQL.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.inner.write_turn {
            Some(turn) => Some(turn.clone().lock_owned().await),
            None => None,
        }
    }

    /// What opening the store migrated.
    pub fn migrations(&self) -> &migrations::MigrationReport {
        &self.inner.migrations
    }

    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    pub fn dialect(&self) -> Dialect {
        self.inner.target.dialect()
    }

    /// The SQLite database file; `None` on PostgreSQL.
    pub fn database_path(&self) -> Option<&Path> {
        match &self.inner.target {
            Target::Sqlite(path) => Some(path),
            Target::Postgres(_) => None,
        }
    }

    /// Pool for reads (read-only connections on SQLite, so reads never wait
    /// for the committer).
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Clients and token lookups in memory, checked fresh before each use;
    /// `None` on PostgreSQL.
    pub fn memory(&self) -> Option<&memory::Memory> {
        self.inner.memory.as_deref()
    }

    /// Shared with `/metrics`.
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn repository(&self) -> WritRepository {
        WritRepository::new(self.clone())
    }

    /// Fires with the last committed cursor after each batch of this
    /// process that holds an event of one of `event_types` (a static
    /// list: one channel per list).
    pub fn commits_of(&self, event_types: &'static [&'static str]) -> watch::Receiver<Cursor> {
        self.inner.watchers.subscribe(event_types)
    }

    /// Fires with the last committed cursor after each batch of this
    /// process. Other processes' commits are seen through `PRAGMA
    /// data_version` (SQLite) or LISTEN/NOTIFY (PostgreSQL).
    pub fn commits(&self) -> watch::Receiver<Cursor> {
        self.inner.committed.clone()
    }

    /// Commands waiting for the committer to take them into a batch.
    pub fn queued_appends(&self) -> usize {
        self.inner.appends.max_capacity() - self.inner.appends.capacity()
    }

    pub async fn append(
        &self,
        events: Vec<SerializedEvent>,
        side_writes: Vec<SideWrite>,
    ) -> Result<AppendReceipt, AppendError> {
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            prepared: events.iter().map(chain::Prepared::of).collect(),
            events,
            side_writes,
            reply,
        };
        let stopped = || AppendError::Unavailable("the committer has stopped".into());
        self.inner
            .appends
            .send(request)
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub async fn event_count(&self) -> Result<i64, sqlx::Error> {
        self.db()
            .scalar_i64(&Statement::new("SELECT count(*) FROM events"))
            .await
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.db()
            .fetch_all(&Statement::new("SELECT 1 AS one"))
            .await
            .map(drop)
    }

    /// The durability settings in force for the sessions that write the log
    /// and its inline rows, for logs and benchmarks: never lowered by Writ
    /// (ADR 0006). The projector's own SQLite connection commits most
    /// slices at `NORMAL` (ADR 0035).
    pub async fn durability(&self) -> Result<Vec<(String, String)>, sqlx::Error> {
        let mut settings = Vec::new();
        let queries: &[(&str, &str)] = match self.dialect() {
            Dialect::Sqlite => &[
                ("journal_mode", "PRAGMA journal_mode"),
                ("synchronous", "PRAGMA synchronous"),
            ],
            Dialect::Postgres => &[
                ("synchronous_commit", "SHOW synchronous_commit"),
                ("fsync", "SHOW fsync"),
            ],
        };
        let mut conn = Conn::connect(self.target()).await?;
        for (name, sql) in queries {
            let row = conn
                .fetch_optional(&Statement::new(*sql))
                .await?
                .unwrap_or_default();
            let value = match row.values().next() {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Number(number)) => match number.as_i64() {
                    Some(0) => "OFF".into(),
                    Some(1) => "NORMAL".into(),
                    Some(2) => "FULL".into(),
                    Some(3) => "EXTRA".into(),
                    _ => number.to_string(),
                },
                _ => "?".into(),
            };
            settings.push(((*name).to_owned(), value));
        }
        Ok(settings)
    }
}

pub(crate) fn connect_options(database: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::from_str("sqlite://")
        .unwrap_or_default()
        .filename(database)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        // Other processes (the CLI next to `serve`) take the write lock in
        // turns; waiting beats failing.
        .busy_timeout(Duration::from_secs(30))
        // Per-statement logging costs the committer measurably (about 15%
        // of append throughput) and says nothing the events do not.
        .log_statements(tracing::log::LevelFilter::Off)
}
