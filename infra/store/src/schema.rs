//! The read tables as a template with a schema name, so a rebuild can
//! create the very same tables in an attached database and compare them
//! row for row. The live tables come from the migrations
//! (`infra/store/migrations/`); a test keeps the two alike.

use super::conn::Dialect;

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
  sid        text,
  parent_gid text,
  ancestors  text,
  act        text
) STRICT;
CREATE INDEX {schema}.grants_by_client ON grants (client_id);
CREATE INDEX {schema}.grants_by_parent ON grants (parent_gid);
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
  status     text NOT NULL,
  audience   text,
  jkt        text,
  status_list text,
  status_idx text
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
CREATE INDEX {schema}.sessions_by_sub ON sessions (sub);
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
CREATE INDEX {schema}.audit_by_recorded_at ON audit_index (recorded_at);
CREATE INDEX {schema}.audit_by_aggregate ON audit_index (aggregate_id);
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
