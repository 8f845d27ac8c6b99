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

/// Enough for every statement shape the committer runs: the inline rows'
/// and the eight sizes of its event inserts.
const CACHED_STATEMENTS: usize = 64;

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
            Bind::Texts(texts) => prepared.raw_bind_parameter(index, Bind::texts_as_json(texts))?,
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

/// How often, at most, the checkpointer copies the WAL into the database
/// while commits keep coming; after they stop it checkpoints once more.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(25);

/// Moves WAL checkpoints off the committer (ADR 0025). SQLite runs them in
/// the COMMIT that crosses 1,000 WAL pages, which then copies about 4 MiB
/// and syncs the database file while every waiting request waits too. The
/// committer's connection turns that off and signals each commit here; a
/// thread of its own runs PASSIVE checkpoints, which never block a writer
/// or a reader, while the committer goes on. The thread ends with the
/// committer (the channel closes). Durability is the WAL's fsync at COMMIT,
/// as before; a checkpoint only moves committed pages.
fn checkpoint_in_background(
    database: &Path,
    committer: &Connection,
) -> rusqlite::Result<std::sync::mpsc::Sender<()>> {
    let checkpointer = open(database, false)?;
    committer.pragma_update(None, "wal_autocheckpoint", 0)?;
    let (commits, committed) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("writ-checkpoint".into())
        .spawn(move || {
            let mut pending = false;
            loop {
                match committed.recv_timeout(CHECKPOINT_EVERY) {
                    Ok(()) => pending = true,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !pending => continue,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
                // Take every signal that came meanwhile, then copy once.
                while committed.try_recv().is_ok() {}
                if let Err(err) = checkpointer.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                    tracing::warn!(error = %err, "WAL checkpoint failed; the next commit retries");
                    continue;
                }
                pending = false;
                std::thread::sleep(CHECKPOINT_EVERY);
            }
        });
    if let Err(err) = spawned {
        // No thread: SQLite checkpoints in the committer's COMMIT again.
        tracing::warn!(error = %err, "cannot start the checkpoint thread");
        committer.pragma_update(None, "wal_autocheckpoint", 1000)?;
    }
    Ok(commits)
}

/// The committer's connection and its checkpointer. The mutex is never
/// contended; it makes the connection `Sync`, as the futures holding a
/// [`crate::Conn`] must be.
pub struct Committing {
    conn: std::sync::Mutex<Connection>,
    checkpoints: std::sync::mpsc::Sender<()>,
    batches_since_restart: std::sync::atomic::AtomicU32,
}

/// The committer waits for the write lock (the projector's slice, the CLI)
/// in steps of 100 µs for up to 30 s, as `busy_timeout` would, but without
/// SQLite's own back-off, which sleeps 1, 2, 5, … 100 ms and so held every
/// waiting request up to 100 ms after a 5 ms slice had long committed.
fn wait_for_the_write_lock(attempt: i32) -> bool {
    std::thread::sleep(Duration::from_micros(100));
    attempt < 300_000
}

/// SQLite starts the WAL file over only when a writer begins with every
/// frame already copied, which a checkpointer running beside a busy
/// committer never leaves it. So every this many batches the committer
/// finishes the copy itself, after answering: a few pages, since the
/// checkpointer did the rest. Under `wrk -c32` issuance the WAL starts
/// over at about 8,000 frames.
const BATCHES_PER_WAL_RESTART: u32 = 256;

impl Committing {
    pub fn open(database: &Path) -> rusqlite::Result<Self> {
        let conn = open(database, false)?;
        conn.busy_handler(Some(wait_for_the_write_lock))?;
        let checkpoints = checkpoint_in_background(database, &conn)?;
        Ok(Self {
            conn: std::sync::Mutex::new(conn),
            checkpoints,
            batches_since_restart: std::sync::atomic::AtomicU32::new(0),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// After each COMMIT: there may be pages to checkpoint.
    pub fn committed(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.batches_since_restart.fetch_add(1, Relaxed);
        // Gone only if the thread could not start; then SQLite checkpoints.
        let _ = self.checkpoints.send(());
    }

    /// Between batches, once answered: lets the next write start the WAL
    /// over when it is due (see [`BATCHES_PER_WAL_RESTART`]).
    pub fn between_batches(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.batches_since_restart.load(Relaxed) < BATCHES_PER_WAL_RESTART {
            return;
        }
        let copied_everything = self
            .lock()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok(row.get::<_, i64>(0)? == 0 && row.get::<_, i64>(1)? == row.get::<_, i64>(2)?)
            })
            .unwrap_or(false);
        // Busy (the checkpointer is copying, a reader holds old pages):
        // try again after the next batch.
        if copied_everything {
            self.batches_since_restart.store(0, Relaxed);
        }
    }
}
