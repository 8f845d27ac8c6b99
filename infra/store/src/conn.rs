//! One connection or pool over either backend. Everything above this file
//! speaks [`Statement`]s and [`Row`]s; only here, the committer's insert and
//! the schema do the two databases differ.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Column, ConnectOptions, Connection, FromRow, Row as _};

use super::statement::{Bind, Statement};

/// A row as column name → JSON value (text, integer, JSON or null).
pub type Row = Map<String, Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The schema holding the live tables; rebuilds write beside it.
    pub fn live_schema(self) -> &'static str {
        match self {
            Self::Sqlite => "main",
            Self::Postgres => "public",
        }
    }
}

/// Where the log lives.
#[derive(Debug, Clone)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Shown in logs and errors: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(url) => match PgConnectOptions::from_str(url) {
                Ok(options) => format!(
                    "postgres://{}@{}:{}/{}",
                    options.get_username(),
                    options.get_host(),
                    options.get_port(),
                    options.get_database().unwrap_or("")
                ),
                Err(_) => "postgres://(unparsable URL)".into(),
            },
        }
    }
}

pub fn pg_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name("writ")
        .log_statements(tracing::log::LevelFilter::Off))
}

pub enum Conn {
    Sqlite(SqliteConnection),
    /// SQLite called inline on the caller's thread: only for a thread that
    /// does nothing else (the committer's), since every call blocks it.
    Embedded(Box<crate::embedded::Committing>),
    Postgres(PgConnection),
}

impl Conn {
    pub async fn connect(target: &Target) -> Result<Self, sqlx::Error> {
        Ok(match target {
            Target::Sqlite(path) => Self::Sqlite(super::connect_options(path).connect().await?),
            Target::Postgres(url) => {
                Self::Postgres(PgConnection::connect_with(&pg_options(url)?).await?)
            }
        })
    }

    /// A writer's connection in a process whose committer copies the WAL
    /// (its checkpoint thread): on SQLite it never checkpoints inside its
    /// own COMMIT, which SQLite does after 1,000 WAL pages (always past
    /// under load) by copying pages and fsyncing the database file while
    /// the write turn is held (ADR 0035).
    pub async fn connect_beside_committer(target: &Target) -> Result<Self, sqlx::Error> {
        let mut conn = Self::connect(target).await?;
        if conn.dialect() == Dialect::Sqlite {
            conn.batch("PRAGMA wal_autocheckpoint = 0").await?;
        }
        Ok(conn)
    }

    /// The committer's connection: inline SQLite on its own thread (ADR
    /// 0025), or an ordinary PostgreSQL connection.
    pub async fn connect_committer(target: &Target) -> Result<Self, sqlx::Error> {
        match target {
            Target::Sqlite(path) => crate::embedded::Committing::open(path)
                .map(|conn| Self::Embedded(Box::new(conn)))
                .map_err(embedded_error),
            Target::Postgres(_) => Self::connect(target).await,
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) | Self::Embedded(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// SQL text without parameters, one or more statements. Through
    /// `Executor::execute` on purpose: sqlx's `raw_sql(..).execute(..)`
    /// future cannot be proven `Send` inside the committer's spawned task
    /// (rust-lang/rust#102211).
    pub async fn batch(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(conn) => sqlx::Executor::execute(&mut *conn, sql).await.map(drop),
            Self::Embedded(conn) => conn.lock().execute_batch(sql).map_err(embedded_error),
            Self::Postgres(conn) => sqlx::Executor::execute(&mut *conn, sql).await.map(drop),
        }
    }

    /// Tells the embedded committer's checkpointer that a COMMIT succeeded.
    pub fn committed(&self) {
        if let Self::Embedded(conn) = self {
            conn.committed();
        }
    }

    /// The embedded committer's housekeeping once a batch is answered.
    pub fn between_batches(&self) {
        if let Self::Embedded(conn) = self {
            conn.between_batches();
        }
    }

    /// Starts a write transaction. On SQLite `BEGIN IMMEDIATE` takes the
    /// write lock now (waiting for it) instead of failing on upgrade later.
    pub async fn begin_write(&mut self) -> Result<(), sqlx::Error> {
        match self.dialect() {
            Dialect::Sqlite => self.batch("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.batch("BEGIN").await,
        }
    }

    /// Runs the statements in order; returns the rows they affected.
    pub async fn execute(&mut self, statements: &[Statement]) -> Result<u64, sqlx::Error> {
        let mut affected = 0;
        for statement in statements {
            affected += match self {
                Self::Sqlite(conn) => sqlite_query(statement)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected(),
                Self::Embedded(conn) => {
                    crate::embedded::execute(&conn.lock(), statement).map_err(embedded_error)?
                }
                Self::Postgres(conn) => pg_query(statement)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected(),
            };
        }
        Ok(affected)
    }

    pub async fn fetch_all(&mut self, statement: &Statement) -> Result<Vec<Row>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(conn) => sqlite_query(statement)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(sqlite_row)
                .collect(),
            Self::Embedded(conn) => {
                crate::embedded::fetch_all(&conn.lock(), statement).map_err(embedded_error)?
            }
            Self::Postgres(conn) => pg_query(statement)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(pg_row)
                .collect(),
        })
    }

    pub async fn fetch_optional(
        &mut self,
        statement: &Statement,
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(self.fetch_all(statement).await?.into_iter().next())
    }

    /// PostgreSQL only: the rows of SQL text with nothing to bind, which
    /// may hold several statements, in one round trip of the simple
    /// protocol. SQLite's inline connection would run only the first
    /// statement, so it refuses instead.
    pub async fn fetch_unbound(&mut self, sql: &str) -> Result<Vec<Row>, sqlx::Error> {
        match self {
            Self::Postgres(conn) => Ok(sqlx::Executor::fetch_all(&mut *conn, sql)
                .await?
                .iter()
                .map(pg_row)
                .collect()),
            Self::Sqlite(_) | Self::Embedded(_) => Err(sqlx::Error::Protocol(
                "several statements in one call are for PostgreSQL only".into(),
            )),
        }
    }
}

/// See [`Db::connect_postgres`].
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A pool for reads and autocommitted writes outside the committer.
#[derive(Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    /// Only a connection that sat idle is pinged before it is lent: a ping
    /// on every loan made each query three round trips, not two (sqlx also
    /// pings a connection it takes back, which closes one that broke while
    /// lent). So after PostgreSQL restarts, a connection lent within a
    /// second of its last use fails one query (503) and is replaced.
    pub async fn connect_postgres(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .before_acquire(|conn, lent| {
                Box::pin(async move {
                    if lent.idle_for >= PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(pg_options(url)?)
            .await
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    pub async fn fetch_all(&self, statement: &Statement) -> Result<Vec<Row>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(pool) => sqlite_query(statement)
                .fetch_all(pool)
                .await?
                .iter()
                .map(sqlite_row)
                .collect(),
            Self::Postgres(pool) => pg_query(statement)
                .fetch_all(pool)
                .await?
                .iter()
                .map(pg_row)
                .collect(),
        })
    }

    pub async fn fetch_optional(&self, statement: &Statement) -> Result<Option<Row>, sqlx::Error> {
        Ok(self.fetch_all(statement).await?.into_iter().next())
    }

    /// Rows decoded into a view's row struct, the same derive on both
    /// backends (every read-table column is text or an integer).
    pub async fn fetch_rows<T: Decoded>(
        &self,
        statement: &Statement,
    ) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Self::Sqlite(pool) => sqlite_query(statement)
                .fetch_all(pool)
                .await?
                .iter()
                .map(T::from_row)
                .collect(),
            Self::Postgres(pool) => pg_query(statement)
                .fetch_all(pool)
                .await?
                .iter()
                .map(T::from_row)
                .collect(),
        }
    }

    pub async fn fetch_row<T: Decoded>(
        &self,
        statement: &Statement,
    ) -> Result<Option<T>, sqlx::Error> {
        Ok(self.fetch_rows(statement).await?.into_iter().next())
    }

    /// The first column of the first row as an integer (counts, maxima).
    pub async fn scalar_i64(&self, statement: &Statement) -> Result<i64, sqlx::Error> {
        let row = self.fetch_optional(statement).await?;
        Ok(row
            .and_then(|r| r.values().next().and_then(Value::as_i64))
            .unwrap_or(0))
    }
}

/// A row struct either backend can decode.
pub trait Decoded:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Decoded for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// The typed drivers share no trait that binds `Option<&str>` and `i64`
/// without higher-ranked bounds sqlx cannot satisfy, so one macro writes
/// the same body for both.
macro_rules! bound_query {
    ($statement:expr, $texts:expr) => {{
        let mut query = sqlx::query(&$statement.sql);
        for bind in &$statement.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.as_deref()),
                Bind::Int(int) => query.bind(*int),
                Bind::Texts(texts) => query.bind($texts(texts)),
            };
        }
        query
    }};
}

fn sqlite_query(
    statement: &Statement,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    bound_query!(statement, Bind::texts_as_json)
}

fn pg_query(
    statement: &Statement,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    bound_query!(statement, std::convert::identity)
}

/// Text, then integer, then the extra types given: the types Writ's tables
/// use. Anything else reads as null; queries cast such columns to text.
macro_rules! json_row {
    ($row:expr $(, $extra:ty)*) => {
        $row.columns()
            .iter()
            .map(|column| {
                let index = column.ordinal();
                let value = $row
                    .try_get::<Option<String>, _>(index)
                    .map(|v| v.map(Value::String))
                    .or_else(|_| $row.try_get::<Option<i64>, _>(index).map(|v| v.map(Value::from)))
                    $(.or_else(|_| $row.try_get::<Option<$extra>, _>(index).map(|v| v.map(Value::from))))*
                    .ok()
                    .flatten()
                    .unwrap_or(Value::Null);
                (column.name().to_owned(), value)
            })
            .collect()
    };
}

fn sqlite_row(row: &SqliteRow) -> Row {
    json_row!(row)
}

fn pg_row(row: &PgRow) -> Row {
    json_row!(row, i32, Value)
}

/// Typed access to [`Row`] columns.
pub trait RowExt {
    fn text(&self, column: &str) -> Option<String>;
    fn int(&self, column: &str) -> Option<i64>;
}

impl RowExt for Row {
    fn text(&self, column: &str) -> Option<String> {
        self.get(column).and_then(Value::as_str).map(str::to_owned)
    }

    fn int(&self, column: &str) -> Option<i64> {
        self.get(column).and_then(Value::as_i64)
    }
}

/// rusqlite's failures as sqlx's, so that the committer tells a taken
/// sequence (a conflict) from an unavailable store on either connection.
#[derive(Debug)]
struct EmbeddedError(rusqlite::Error);

impl std::fmt::Display for EmbeddedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for EmbeddedError {}

impl sqlx::error::DatabaseError for EmbeddedError {
    fn message(&self) -> &str {
        "SQLite refused the statement"
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        if crate::embedded::is_unique_violation(&self.0) {
            sqlx::error::ErrorKind::UniqueViolation
        } else {
            sqlx::error::ErrorKind::Other
        }
    }
}

pub(crate) fn embedded_error(err: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Database(Box::new(EmbeddedError(err)))
}
