//! Versioned migrations: numbered `.sql` files under `infra/store/migrations/`,
//! one folder per backend, run by sqlx's migrator, which records each with
//! its checksum in `_sqlx_migrations`. A released file is never edited: the
//! migrator refuses a database whose recorded checksum differs, and one
//! that records a migration this build does not know (a newer Writ's).
//!
//! Writ before versioned migrations recorded migrations 1–3 in its own
//! `writ_migrations` table; those are the same SQL as the first three
//! files, so such a database is adopted: its versions are recorded as
//! applied, with the files' checksums, without running anything.

use std::borrow::Cow;

use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationType, Migrator};
use sqlx::Connection;

use super::conn::{Conn, Dialect};

type Source = (i64, &'static str, &'static str);

const SQLITE: &[Source] = &[
    (
        1,
        "log state and read tables",
        include_str!("../migrations/sqlite/0001_log_state_and_read_tables.sql"),
    ),
    (
        2,
        "audit checkpoints",
        include_str!("../migrations/sqlite/0002_audit_checkpoints.sql"),
    ),
    (
        3,
        "audit index by time",
        include_str!("../migrations/sqlite/0003_audit_index_by_time.sql"),
    ),
    (
        4,
        "token audience",
        include_str!("../migrations/sqlite/0004_token_audience.sql"),
    ),
    (
        5,
        "token dpop key",
        include_str!("../migrations/sqlite/0005_token_dpop_key.sql"),
    ),
    (
        6,
        "sessions by subject",
        include_str!("../migrations/sqlite/0006_sessions_by_subject.sql"),
    ),
    (
        7,
        "token exchange lineage",
        include_str!("../migrations/sqlite/0007_token_exchange_lineage.sql"),
    ),
    (
        8,
        "token status lists",
        include_str!("../migrations/sqlite/0008_token_status_lists.sql"),
    ),
    (
        9,
        "audit subject of grants",
        include_str!("../migrations/sqlite/0009_audit_subject_of_grants.sql"),
    ),
];

const POSTGRES: &[Source] = &[
    (
        1,
        "log state and read tables",
        include_str!("../migrations/postgres/0001_log_state_and_read_tables.sql"),
    ),
    (
        2,
        "audit checkpoints",
        include_str!("../migrations/postgres/0002_audit_checkpoints.sql"),
    ),
    (
        3,
        "audit index by time",
        include_str!("../migrations/postgres/0003_audit_index_by_time.sql"),
    ),
    (
        4,
        "token audience",
        include_str!("../migrations/postgres/0004_token_audience.sql"),
    ),
    (
        5,
        "token dpop key",
        include_str!("../migrations/postgres/0005_token_dpop_key.sql"),
    ),
    (
        6,
        "sessions by subject",
        include_str!("../migrations/postgres/0006_sessions_by_subject.sql"),
    ),
    (
        7,
        "token exchange lineage",
        include_str!("../migrations/postgres/0007_token_exchange_lineage.sql"),
    ),
    (
        8,
        "token status lists",
        include_str!("../migrations/postgres/0008_token_status_lists.sql"),
    ),
    (
        9,
        "audit subject of grants",
        include_str!("../migrations/postgres/0009_audit_subject_of_grants.sql"),
    ),
];

/// What one run did, for `writ migrate` to say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions an earlier Writ had applied and recorded in
    /// `writ_migrations`, now recorded for the migrator without running.
    pub adopted: Vec<i64>,
    /// Versions applied by this run, with their descriptions.
    pub applied: Vec<(i64, String)>,
    /// The highest version the database now has.
    pub current: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "the database was migrated by a newer Writ (migration {0} is unknown to this version); run that Writ or a later one"
    )]
    Newer(i64),
    #[error(
        "migration {0} recorded in the database differs from this Writ's (its checksum); released migrations are never edited"
    )]
    Edited(i64),
    #[error("migration {0} failed part-way and needs an operator")]
    Dirty(i64),
    #[error(
        "the database records migration {0} of an earlier Writ, which this version does not know"
    )]
    UnknownEarlier(i64),
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Migrator(MigrateError),
}

impl From<MigrateError> for MigrationError {
    fn from(err: MigrateError) -> Self {
        match err {
            MigrateError::VersionMissing(version) => Self::Newer(version),
            MigrateError::VersionMismatch(version) => Self::Edited(version),
            MigrateError::Dirty(version) => Self::Dirty(version),
            MigrateError::Execute(err) => Self::Database(err),
            other => Self::Migrator(other),
        }
    }
}

pub fn sources(dialect: Dialect) -> &'static [Source] {
    match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    }
}

fn migrator(dialect: Dialect) -> Migrator {
    let migrations: Vec<Migration> = sources(dialect)
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// Applies what is missing. On SQLite the whole run is one `BEGIN
/// IMMEDIATE` transaction (each migration a savepoint inside it), so
/// processes starting together on one file take turns; on PostgreSQL the
/// migrator's advisory lock does the same.
pub async fn migrate(conn: &mut Conn) -> Result<MigrationReport, MigrationError> {
    let dialect = conn.dialect();
    let migrator = migrator(dialect);
    match conn {
        Conn::Sqlite(sqlite) => {
            let mut tx = sqlite.begin_with("BEGIN IMMEDIATE").await?;
            let report = run(&mut *tx, &migrator).await?;
            tx.commit().await?;
            Ok(report)
        }
        Conn::Postgres(postgres) => run(postgres, &migrator).await,
        // The committer's connection is opened after migrations.
        Conn::Embedded(_) => Err(MigrationError::Database(sqlx::Error::Configuration(
            "migrations run over sqlx, not the committer's connection".into(),
        ))),
    }
}

async fn run<C>(conn: &mut C, migrator: &Migrator) -> Result<MigrationReport, MigrationError>
where
    C: Migrate + Bookkeeping,
{
    conn.ensure_migrations_table().await?;
    let mut adopted = Vec::new();
    if conn.list_applied_migrations().await?.is_empty() {
        for version in conn.earlier_versions().await? {
            let migration = migrator
                .iter()
                .find(|m| m.version == version)
                .ok_or(MigrationError::UnknownEarlier(version))?;
            conn.record_applied(migration).await?;
            adopted.push(version);
        }
    }
    let before: Vec<i64> = conn
        .list_applied_migrations()
        .await?
        .iter()
        .map(|m| m.version)
        .collect();
    migrator.run_direct(conn).await?;
    let applied: Vec<(i64, String)> = migrator
        .iter()
        .filter(|m| !before.contains(&m.version))
        .map(|m| (m.version, m.description.to_string()))
        .collect();
    let current = before
        .iter()
        .chain(applied.iter().map(|(version, _)| version))
        .copied()
        .max()
        .unwrap_or(0);
    Ok(MigrationReport {
        adopted,
        applied,
        current,
    })
}

/// What an earlier Writ recorded, and recording a version as the migrator
/// would have. The insert ignores a version already there, so two
/// processes adopting one database at once both succeed.
trait Bookkeeping {
    async fn earlier_versions(&mut self) -> Result<Vec<i64>, sqlx::Error>;
    async fn record_applied(&mut self, migration: &Migration) -> Result<(), sqlx::Error>;
}

/// The row sqlx's migrator writes for an applied migration; `$n` numbers
/// parameters on both backends.
const RECORD_APPLIED: &str =
    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
     VALUES ($1, $2, TRUE, $3, -1) ON CONFLICT DO NOTHING";

impl Bookkeeping for sqlx::SqliteConnection {
    async fn earlier_versions(&mut self) -> Result<Vec<i64>, sqlx::Error> {
        let earlier: Option<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'writ_migrations'",
        )
        .fetch_optional(&mut *self)
        .await?;
        if earlier.is_none() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT version FROM writ_migrations ORDER BY version")
            .fetch_all(self)
            .await
    }

    async fn record_applied(&mut self, migration: &Migration) -> Result<(), sqlx::Error> {
        sqlx::query(RECORD_APPLIED)
            .bind(migration.version)
            .bind(&*migration.description)
            .bind(&*migration.checksum)
            .execute(self)
            .await
            .map(drop)
    }
}

impl Bookkeeping for sqlx::PgConnection {
    async fn earlier_versions(&mut self) -> Result<Vec<i64>, sqlx::Error> {
        let earlier: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('writ_migrations')::text")
                .fetch_one(&mut *self)
                .await?;
        if earlier.is_none() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT version::bigint FROM writ_migrations ORDER BY version")
            .fetch_all(self)
            .await
    }

    async fn record_applied(&mut self, migration: &Migration) -> Result<(), sqlx::Error> {
        sqlx::query(RECORD_APPLIED)
            .bind(migration.version)
            .bind(&*migration.description)
            .bind(&*migration.checksum)
            .execute(self)
            .await
            .map(drop)
    }
}
