//! Tables and migrations. The read tables are written from a template with
//! a schema name, so a rebuild can create the very same tables in an
//! attached database and compare them row for row.

use super::conn::{Conn, Dialect};
use super::statement::Statement;

/// Tables that can be rebuilt from the log alone, in comparison order.
pub const REBUILDABLE_TABLES: &[&str] = &[
    "clients",
    "accounts",
    "usernames",
    "consents",
    "grants",
    "tokens",
    "signing_keys",
    "sessions",
    "audit_index",
];

/// The log itself: the crates' `events` and `snapshots`, plus Writ's
/// global order, commit time and chain hash. The primary key stays
/// `(aggregate_type, aggregate_id, sequence)`: it is the violation the
/// crates report as a conflict. On SQLite `position` is assigned by the
/// committer inside its write transaction; on PostgreSQL it is an identity
/// and the order is `(txid, position)` (ADR 0002).
const SQLITE_LOG_DDL: &str = "
CREATE TABLE events (
  aggregate_type text NOT NULL,
  aggregate_id   text NOT NULL,
  sequence       integer CHECK (sequence >= 0) NOT NULL,
  event_type     text NOT NULL,
  event_version  text NOT NULL,
  payload        text NOT NULL,
  metadata       text NOT NULL,
  position       integer NOT NULL,
  recorded_at    text NOT NULL,
  hash           text NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;
CREATE UNIQUE INDEX events_position ON events (position);
CREATE TABLE snapshots (
  aggregate_type   text NOT NULL,
  aggregate_id     text NOT NULL,
  last_sequence    integer CHECK (last_sequence >= 0) NOT NULL,
  current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL,
  payload          text NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
) STRICT;
";

const POSTGRES_LOG_DDL: &str = "
CREATE TABLE events (
  aggregate_type text NOT NULL,
  aggregate_id   text NOT NULL,
  sequence       bigint CHECK (sequence >= 0) NOT NULL,
  event_type     text NOT NULL,
  event_version  text NOT NULL,
  payload        json NOT NULL,
  metadata       json NOT NULL,
  position       bigint GENERATED ALWAYS AS IDENTITY,
  txid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
  recorded_at    timestamptz NOT NULL DEFAULT now(),
  hash           text NOT NULL DEFAULT '',
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX events_position ON events (position);
CREATE INDEX events_global_order ON events (txid, position);
CREATE TABLE snapshots (
  aggregate_type   text NOT NULL,
  aggregate_id     text NOT NULL,
  last_sequence    bigint CHECK (last_sequence >= 0) NOT NULL,
  current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
  payload          json NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
";

/// Tables that are not projections: keys, and the projector's checkpoints.
const STATE_DDL: &str = "
CREATE TABLE subject_keys (
  sub         text PRIMARY KEY,
  wrapped_key text NOT NULL,
  created_at  text NOT NULL
) STRICT;
CREATE TABLE signing_key_secrets (
  kid             text PRIMARY KEY,
  wrapped_private text NOT NULL
) STRICT;
CREATE TABLE projector_checkpoints (
  projection text PRIMARY KEY,
  txid       integer NOT NULL,
  position   integer NOT NULL
) STRICT;
";

/// Signed checkpoints over the global order (ADR 0017): evidence kept
/// beside the log, never rebuilt from it.
const CHECKPOINTS_DDL: &str = "
CREATE TABLE audit_checkpoints (
  cursor       text PRIMARY KEY,
  event_count  integer NOT NULL,
  rolling_hash text NOT NULL,
  signed_at    text NOT NULL,
  public_key   text NOT NULL,
  signature    text NOT NULL
) STRICT;
";

/// The audit index's one index besides its key: the export selects a time
/// range (ADR 0021).
const AUDIT_BY_TIME: &str = "audit_by_recorded_at ON audit_index (recorded_at)";

/// The audit index had indexes by subject and by client, which no query
/// used and every projected event and replay paid for. A database made by
/// this version has [`AUDIT_BY_TIME`] from migration 1 already.
fn audit_index_by_time(dialect: Dialect) -> String {
    let schema = dialect.live_schema();
    let ddl = format!(
        "DROP INDEX IF EXISTS {schema}.audit_by_subject;
DROP INDEX IF EXISTS {schema}.audit_by_client;
CREATE INDEX IF NOT EXISTS {schema}.{AUDIT_BY_TIME};"
    );
    qualify_indexes(&ddl, schema, dialect)
}

/// SQLite's DDL is the template: PostgreSQL has no STRICT tables and names
/// 64-bit integers `bigint`.
fn for_dialect(ddl: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => ddl.to_owned(),
        Dialect::Postgres => ddl
            .replace(") STRICT;", ");")
            .replace(" integer ", " bigint "),
    }
}

pub fn read_tables_ddl(schema: &str, dialect: Dialect) -> String {
    let ddl = format!(
        "
CREATE TABLE {schema}.clients (
  client_id     text PRIMARY KEY,
  name          text NOT NULL,
  settings      text NOT NULL,
  secret_hash   text,
  status        text NOT NULL,
  registered_at text NOT NULL,
  updated_at    text NOT NULL
) STRICT;
CREATE TABLE {schema}.accounts (
  sub           text PRIMARY KEY,
  account_id    text NOT NULL,
  username      text NOT NULL,
  email         text,
  name          text,
  password_hash text NOT NULL,
  status        text NOT NULL,
  created_at    text NOT NULL,
  credentials_changed_at text NOT NULL,
  updated_at    text NOT NULL
) STRICT;
CREATE TABLE {schema}.usernames (
  account_id text PRIMARY KEY,
  sub        text NOT NULL
) STRICT;
CREATE TABLE {schema}.consents (
  sub          text NOT NULL,
  client_id    text NOT NULL,
  scopes       text NOT NULL,
  status       text NOT NULL,
  granted_at   text NOT NULL,
  withdrawn_at text,
  updated_at   text NOT NULL,
  PRIMARY KEY (sub, client_id)
) STRICT;
CREATE TABLE {schema}.grants (
  gid        text PRIMARY KEY,
  kind       text NOT NULL,
  client_id  text NOT NULL,
  sub        text,
  scopes     text NOT NULL,
  audience   text NOT NULL,
  status     text NOT NULL,
  created_at text NOT NULL,
  updated_at text NOT NULL,
  expires_at text NOT NULL,
  cursor     text NOT NULL,
  sid        text
) STRICT;
CREATE INDEX {schema}.grants_by_client ON grants (client_id);
CREATE INDEX {schema}.grants_by_sid ON grants (sid);
CREATE INDEX {schema}.grants_by_sub ON grants (sub);
CREATE TABLE {schema}.tokens (
  token_key  text PRIMARY KEY,
  kind       text NOT NULL,
  gid        text NOT NULL,
  jti        text,
  scopes     text,
  issued_at  text NOT NULL,
  expires_at text NOT NULL,
  status     text NOT NULL
) STRICT;
CREATE INDEX {schema}.tokens_by_gid ON tokens (gid);
CREATE TABLE {schema}.signing_keys (
  kid          text PRIMARY KEY,
  alg          text NOT NULL,
  public_jwk   text NOT NULL,
  status       text NOT NULL,
  generated_at text NOT NULL,
  updated_at   text NOT NULL
) STRICT;
CREATE TABLE {schema}.sessions (
  sid        text PRIMARY KEY,
  sub        text NOT NULL,
  auth_time  text NOT NULL,
  expires_at text NOT NULL,
  status     text NOT NULL,
  updated_at text NOT NULL
) STRICT;
CREATE TABLE {schema}.audit_index (
  position       integer PRIMARY KEY,
  cursor         text NOT NULL,
  recorded_at    text NOT NULL,
  aggregate_type text NOT NULL,
  aggregate_id   text NOT NULL,
  event_type     text NOT NULL,
  actor          text,
  client_id      text,
  subject        text
) STRICT;
CREATE INDEX {schema}.{AUDIT_BY_TIME};
"
    );
    qualify_indexes(&for_dialect(&ddl, dialect), schema, dialect)
}

/// The template writes `CREATE INDEX [IF NOT EXISTS] {schema}.name ON
/// table`. SQLite qualifies the index and not the table; PostgreSQL the
/// table, and the index lives in its table's schema.
fn qualify_indexes(ddl: &str, schema: &str, dialect: Dialect) -> String {
    if dialect == Dialect::Sqlite {
        return ddl.to_owned();
    }
    let for_postgres = |line: &str| {
        ["CREATE INDEX ", "CREATE INDEX IF NOT EXISTS "]
            .into_iter()
            .find_map(|create| {
                let (index, table) = line
                    .strip_prefix(create)?
                    .strip_prefix(&format!("{schema}."))?
                    .split_once(" ON ")?;
                Some(format!("{create}{index} ON {schema}.{table}"))
            })
            .unwrap_or_else(|| line.to_owned())
    };
    ddl.lines().map(for_postgres).collect::<Vec<_>>().join("\n")
}

/// Serialises migrators across processes on PostgreSQL.
const MIGRATION_LOCK: i64 = 0x0057_5249_544d_4947; // "WRITMIG"

/// Applies the migrations not yet recorded, each in its own transaction
/// (`BEGIN IMMEDIATE` on SQLite; an advisory lock on PostgreSQL), so
/// concurrent starters apply each one once.
pub async fn migrate(conn: &mut Conn) -> Result<usize, sqlx::Error> {
    let dialect = conn.dialect();
    let log = match dialect {
        Dialect::Sqlite => SQLITE_LOG_DDL,
        Dialect::Postgres => POSTGRES_LOG_DDL,
    };
    let migrations = [
        (
            1_i64,
            format!(
                "{log}{}{}",
                for_dialect(STATE_DDL, dialect),
                read_tables_ddl(dialect.live_schema(), dialect)
            ),
        ),
        (2, for_dialect(CHECKPOINTS_DDL, dialect)),
        (3, audit_index_by_time(dialect)),
    ];
    let mut applied = 0;
    for (version, sql) in migrations {
        conn.begin_write().await?;
        let outcome = apply_one(conn, version, &sql).await;
        match outcome {
            Ok(true) => {
                conn.batch("COMMIT").await?;
                applied += 1;
            }
            Ok(false) => conn.batch("ROLLBACK").await?,
            Err(err) => {
                let _ = conn.batch("ROLLBACK").await;
                return Err(err);
            }
        }
    }
    Ok(applied)
}

async fn apply_one(conn: &mut Conn, version: i64, sql: &str) -> Result<bool, sqlx::Error> {
    let dialect = conn.dialect();
    if dialect == Dialect::Postgres {
        conn.execute(&[Statement::new("SELECT pg_advisory_xact_lock($1)").int(MIGRATION_LOCK)])
            .await?;
    }
    conn.batch(&for_dialect(
        "CREATE TABLE IF NOT EXISTS writ_migrations (version integer PRIMARY KEY, applied_at text NOT NULL) STRICT;",
        dialect,
    ))
    .await?;
    let done = conn
        .fetch_optional(
            &Statement::new("SELECT version FROM writ_migrations WHERE version = $1").int(version),
        )
        .await?;
    if done.is_some() {
        return Ok(false);
    }
    conn.batch(sql).await?;
    conn.execute(&[Statement::new(
        "INSERT INTO writ_migrations (version, applied_at) VALUES ($1, $2)",
    )
    .int(version)
    .text(super::inline::timestamp(&chrono::Utc::now()))])
        .await?;
    Ok(true)
}
