//! SQLite called inline, through rusqlite on the same libsqlite3 as sqlx.
//! sqlx runs every SQLite statement on a worker thread and wakes the caller
//! afterwards: two thread crossings per statement, which made context
//! switches 62 % of the committer's time (ADR 0025). The committer, which
//! runs alone on its own thread, and the freshness check, which costs a
//! microsecond, call SQLite directly instead. Everything else keeps sqlx.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use crate::conn::Row;
use crate::statement::{Bind, Statement};

/// Enough for the committer's statements in their usual shapes (one per
/// batch size of the multi-row inserts, which repeat under steady load).
const CACHED_STATEMENTS: usize = 256;

/// The same settings as sqlx's connections ([`crate::connect_options`]):
/// WAL, `synchronous=FULL`, and a wait for the write lock instead of a
/// failure while another process holds it.
pub fn open(database: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(database, flags)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A multi-row insert inside a transaction keeps a statement journal;
        // on disk that is a temporary file opened and unlinked per batch.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
    }
    conn.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
    Ok(conn)
}

/// Statements use `$1`-style placeholders, which SQLite treats as names:
/// each value is bound under its name, wherever and however often the
/// statement uses it.
fn prepared<'c>(
    conn: &'c Connection,
    statement: &Statement,
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    let mut prepared = conn.prepare_cached(&statement.sql)?;
    for (offset, bind) in statement.binds.iter().enumerate() {
        let Some(index) = prepared.parameter_index(&format!("${}", offset + 1))? else {
            continue;
        };
        match bind {
            Bind::Text(text) => prepared.raw_bind_parameter(index, text.as_deref())?,
            Bind::Int(int) => prepared.raw_bind_parameter(index, int)?,
        }
    }
    Ok(prepared)
}

/// Runs one statement; returns the rows it changed.
pub fn execute(conn: &Connection, statement: &Statement) -> rusqlite::Result<u64> {
    let mut prepared = prepared(conn, statement)?;
    prepared.raw_execute()?;
    Ok(conn.changes())
}

/// Every row, as column name → JSON value, the shape [`crate::Conn`] returns.
pub fn fetch_all(conn: &Connection, statement: &Statement) -> rusqlite::Result<Vec<Row>> {
    let mut prepared = prepared(conn, statement)?;
    let names: Vec<String> = prepared
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut rows = prepared.raw_query();
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        let mut decoded = Row::new();
        for (index, name) in names.iter().enumerate() {
            let value = match row.get_ref(index)? {
                ValueRef::Null | ValueRef::Blob(_) => Value::Null,
                ValueRef::Integer(int) => Value::from(int),
                ValueRef::Real(real) => Value::from(real),
                ValueRef::Text(text) => Value::String(String::from_utf8_lossy(text).into_owned()),
            };
            decoded.insert(name.clone(), value);
        }
        all.push(decoded);
    }
    Ok(all)
}

/// Whether a failed statement broke a UNIQUE constraint (a stream's
/// sequence taken by another writer).
pub fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}
