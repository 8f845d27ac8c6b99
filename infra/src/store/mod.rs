//! The event log and read tables on SQLite (embedded). Reads of a stream go
//! through sqlite-es over its own tables; appends go through Writ's
//! committer, which sqlite-es's one-transaction-per-call `persist` cannot do.

mod chain;
mod committer;
mod cursor;
pub mod inline;
mod repository;
pub mod schema;
pub mod statement;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::SerializedEvent;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row, SqlitePool};
use tokio::sync::{mpsc, oneshot, watch};

pub use chain::{link as chain_link, verify_chains, ChainBreak, RowForHash, GENESIS};
pub use committer::{AppendError, AppendReceipt, SideWrite, DEFAULT_MAX_BATCH};
pub use cursor::{Cursor, START};
pub use repository::WritRepository;

use crate::metrics::Metrics;

/// The synchronous mode Writ runs SQLite in (ADR 0006): FULL, so a commit
/// that was answered survives power loss. Never OFF.
pub const SQLITE_SYNCHRONOUS: &str = "FULL";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {0} is not usable: {1}")]
    DataDir(String, String),
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
}

/// One event as stored: the row plus its place in the global order.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
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
            position: self.position,
        }
    }

    pub fn from_row(row: &SqliteRow) -> Result<Self, sqlx::Error> {
        let json = |column: &str| -> Result<Value, sqlx::Error> {
            let text: String = row.try_get(column)?;
            serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
        };
        Ok(Self {
            position: row.try_get("position")?,
            recorded_at: row.try_get("recorded_at")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: json("payload")?,
            metadata: json("metadata")?,
            hash: row.try_get("hash")?,
        })
    }
}

pub const EVENT_COLUMNS: &str =
    "position, recorded_at, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, hash";

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    database: PathBuf,
    readers: SqlitePool,
    appends: mpsc::Sender<AppendRequest>,
    committed: watch::Receiver<i64>,
    metrics: Arc<Metrics>,
}

use committer::AppendRequest;

impl Store {
    /// Opens (creating if needed) `<data_dir>/writ.db`, applies migrations
    /// and starts the committer task.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_sqlite_with(data_dir, committer::DEFAULT_MAX_BATCH).await
    }

    /// `max_batch` 1 turns group commit off (one command per transaction),
    /// which the append benchmark compares against.
    pub async fn open_sqlite_with(data_dir: &Path, max_batch: usize) -> Result<Self, StoreError> {
        let shown = data_dir.display().to_string();
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::DataDir(shown.clone(), e.to_string()))?;
        let database = data_dir.join("writ.db");
        let options = connect_options(&database);
        let mut writer = options
            .connect()
            .await
            .map_err(|e| StoreError::DataDir(shown.clone(), e.to_string()))?;
        schema::migrate(&mut writer)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrations failed: {e}")))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| StoreError::DataDir(shown, e.to_string()))?;
        let metrics = Arc::new(Metrics::default());
        let (appends, requests) = mpsc::channel(4096);
        let (committed_tx, committed) = watch::channel(0);
        tokio::spawn(committer::run(
            writer,
            requests,
            metrics.clone(),
            committed_tx,
            max_batch.max(1),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                database,
                readers,
                appends,
                committed,
                metrics,
            }),
        })
    }

    pub fn database_path(&self) -> &Path {
        &self.inner.database
    }

    /// Pool of read-only connections: reads never wait for the committer.
    pub fn readers(&self) -> &SqlitePool {
        &self.inner.readers
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn repository(&self) -> WritRepository {
        WritRepository::new(self.clone())
    }

    /// Fires with the last committed position after each batch of this
    /// process. Commits by other processes are seen via `data_version`.
    pub fn commits(&self) -> watch::Receiver<i64> {
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
            events,
            side_writes,
            reply,
        };
        self.inner
            .appends
            .send(request)
            .await
            .map_err(|_| AppendError::Unavailable("the committer has stopped".into()))?;
        answer
            .await
            .map_err(|_| AppendError::Unavailable("the committer has stopped".into()))?
    }

    /// Events after `after` in global order, at most `limit`.
    pub async fn events_after(
        &self,
        after: Cursor,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(after.position)
            .bind(limit)
            .fetch_all(self.readers())
            .await?;
        rows.iter().map(StoredEvent::from_row).collect()
    }

    pub async fn event_count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(self.readers())
            .await
    }

    pub async fn head(&self) -> Result<Cursor, sqlx::Error> {
        let position: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
            .fetch_one(self.readers())
            .await?;
        Ok(Cursor { position })
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(self.readers())
            .await
            .map(drop)
    }
}

/// Runs SQL text (one or more statements, no parameters). A plain function
/// over `Executor::execute` because sqlx's `raw_sql(..).execute(..)` future
/// cannot be proven `Send` inside spawned tasks (rust-lang/rust#102211).
pub fn run_sql<'a>(
    conn: &'a mut sqlx::SqliteConnection,
    sql: &'a str,
) -> futures::future::BoxFuture<'a, Result<(), sqlx::Error>> {
    Box::pin(async move { sqlx::Executor::execute(conn, sql).await.map(drop) })
}

pub fn connect_options(database: &Path) -> SqliteConnectOptions {
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
