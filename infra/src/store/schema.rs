//! Tables and migrations. The read tables are written from a template with
//! a schema name, so a rebuild can create the very same tables in an
//! attached database and compare them row for row.

use sqlx::SqliteConnection;

use super::run_sql;

/// Tables that can be rebuilt from the log alone, in comparison order.
pub const REBUILDABLE_TABLES: &[&str] = &[
    "clients",
    "accounts",
    "usernames",
    "consents",
    "grants",
    "tokens",
    "signing_keys",
    "audit_index",
];

/// The log itself: sqlite-es's `events` and `snapshots`, plus Writ's
/// global `position`, commit time and chain hash. The primary key stays
/// `(aggregate_type, aggregate_id, sequence)` because that is the
/// violation sqlite-es reports as a conflict.
const LOG_DDL: &str = "
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
  position   integer NOT NULL
) STRICT;
";

pub fn read_tables_ddl(schema: &str) -> String {
    format!(
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
  updated_at    text NOT NULL
) STRICT;
CREATE TABLE {schema}.usernames (
  account_id text PRIMARY KEY,
  sub        text NOT NULL
) STRICT;
CREATE TABLE {schema}.consents (
  sub        text NOT NULL,
  client_id  text NOT NULL,
  scopes     text NOT NULL,
  status     text NOT NULL,
  updated_at text NOT NULL,
  PRIMARY KEY (sub, client_id)
) STRICT;
CREATE TABLE {schema}.grants (
  gid        text PRIMARY KEY,
  kind       text NOT NULL,
  client_id  text NOT NULL,
  sub        text,
  scopes     text NOT NULL,
  status     text NOT NULL,
  created_at text NOT NULL,
  updated_at text NOT NULL,
  expires_at text NOT NULL
) STRICT;
CREATE INDEX {schema}.grants_by_client ON grants (client_id);
CREATE INDEX {schema}.grants_by_sub ON grants (sub);
CREATE TABLE {schema}.tokens (
  token_key  text PRIMARY KEY,
  kind       text NOT NULL,
  gid        text NOT NULL,
  jti        text,
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
CREATE INDEX {schema}.audit_by_subject ON audit_index (subject);
CREATE INDEX {schema}.audit_by_client ON audit_index (client_id);
"
    )
}

/// Applies the migrations not yet recorded, each in its own transaction.
pub async fn migrate(conn: &mut SqliteConnection) -> Result<usize, sqlx::Error> {
    run_sql(
        conn,
        "CREATE TABLE IF NOT EXISTS writ_migrations (version integer PRIMARY KEY, applied_at text NOT NULL) STRICT",
    )
    .await?;
    let migrations = [(1_i64, format!("{LOG_DDL}{}", read_tables_ddl("main")))];
    let mut applied = 0;
    for (version, sql) in migrations {
        run_sql(conn, "BEGIN IMMEDIATE").await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM writ_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *conn)
                .await?;
        if done.is_some() {
            run_sql(conn, "ROLLBACK").await?;
            continue;
        }
        let outcome = async {
            run_sql(conn, &sql).await?;
            sqlx::query(
                "INSERT INTO writ_migrations (version, applied_at) VALUES (?, datetime('now'))",
            )
            .bind(version)
            .execute(&mut *conn)
            .await
        }
        .await;
        match outcome {
            Ok(_) => {
                run_sql(conn, "COMMIT").await?;
                applied += 1;
            }
            Err(err) => {
                run_sql(conn, "ROLLBACK").await?;
                return Err(err);
            }
        }
    }
    Ok(applied)
}
