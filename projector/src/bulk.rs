//! The bulk replay, on PostgreSQL: the log is read in one snapshot as one
//! stream, every event's changes are applied to the inline tables in
//! memory ([`writ_infra::store::fold`]), and the rows are loaded with COPY
//! into tables whose keys and indexes are built afterwards. The statement
//! replay sends about two upserts per event, each parsed and planned; this
//! sends each final row once.
//!
//! The audit index is final per event, so its rows stream into their table
//! on a second connection while the log is still being read. Client and
//! subject are found as [`crate::audit::insert_events`] finds them: in the
//! event where it names them, else in the grant's or session's row.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use sqlx::postgres::PgConnection;
use sqlx::Row as _;
use tokio::sync::mpsc;
use writ_infra::store::change::{Change, Table, GRANTS, INLINE_TABLES, SESSIONS};
use writ_infra::store::fold::{copy_line, Tables};
use writ_infra::store::inline::{self, EventHead};
use writ_infra::store::statement::Statement;
use writ_infra::store::{Conn, Cursor, RowExt, Target};

use crate::replay::{Progress, Until};
use crate::ProjectorError;

/// How much COPY text is sent at a time.
const CHUNK: usize = 1 << 20;
/// Events between two progress reports.
const REPORT_EVERY: u64 = 5000;

const AUDIT_COLUMNS: &str =
    "position, cursor, recorded_at, aggregate_type, aggregate_id, event_type, actor, client_id, subject";

/// Every event below the global-order bound, in global order, with the
/// fields the audit row takes from the payload extracted by the database
/// exactly as the live index's `->>` does (only for the few aggregates
/// whose events name them). `recorded_at` arrives binary and `actor` is read from the metadata here:
/// the database's `to_char` and `->>` cost more than the whole scan.
const LOG_STREAM: &str = "SELECT txid::text::bigint AS txid, position, recorded_at, \
     aggregate_type, aggregate_id, event_type, event_version, payload::text AS payload, \
     metadata::text AS metadata, \
     CASE WHEN aggregate_type IN ('Account', 'LoginDay', 'Consent', 'Session') THEN payload -> event_type ->> 'sub' END AS named_sub, \
     CASE WHEN aggregate_type = 'Consent' THEN payload -> event_type ->> 'client_id' END AS named_client \
     FROM events WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY events.txid, events.position";
/// [`LOG_STREAM`]'s columns by place: a name is a hash lookup, per column
/// per event.
mod column {
    pub const TXID: usize = 0;
    pub const POSITION: usize = 1;
    pub const RECORDED_AT: usize = 2;
    pub const AGGREGATE_TYPE: usize = 3;
    pub const AGGREGATE_ID: usize = 4;
    pub const EVENT_TYPE: usize = 5;
    pub const EVENT_VERSION: usize = 6;
    pub const PAYLOAD: usize = 7;
    pub const METADATA: usize = 8;
    pub const NAMED_SUB: usize = 9;
    pub const NAMED_CLIENT: usize = 10;
}

fn storage(err: impl std::fmt::Display) -> ProjectorError {
    ProjectorError::Sql(sqlx::Error::Protocol(err.to_string()))
}

fn pg(conn: Conn) -> Result<PgConnection, ProjectorError> {
    match conn {
        Conn::Postgres(conn) => Ok(conn),
        Conn::Sqlite(_) => Err(ProjectorError::Invalid(
            "the bulk replay runs on PostgreSQL".into(),
        )),
    }
}

/// Replays the log up to `until` into the empty read tables of `schema`.
/// Returns the last event applied.
pub(crate) async fn replay(
    target: &Target,
    schema: &str,
    until: Until,
    progress: &mut Progress,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Option<Cursor>, ProjectorError> {
    let mut reader = pg(Conn::connect(target).await?)?;
    let mut loader = Conn::connect(target).await?;
    let deferred = Deferred::take(&mut loader, schema).await?;
    let loader = pg(loader)?;
    let (chunks, received) = mpsc::channel::<Vec<u8>>(8);
    let audit_copy = format!("COPY {schema}.audit_index ({AUDIT_COLUMNS}) FROM STDIN");
    let audit = tokio::spawn(copy_stream(loader, audit_copy, received));

    let (handed_over, batches) = mpsc::channel::<Batch>(4);
    let folding = tokio::task::spawn_blocking(move || fold(batches, chunks));

    let started = std::time::Instant::now();
    sqlx::Executor::execute(
        &mut reader,
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    )
    .await?;
    let read = read_log(&mut reader, until, progress, on_progress, handed_over).await;
    sqlx::Executor::execute(&mut reader, "COMMIT").await?;
    let folded = folding.await.map_err(storage)?;
    let copied = audit.await.map_err(storage)?;
    read?;
    let (tables, last, indexed) = folded?;
    let (mut loader, audited) = copied.map_err(ProjectorError::Sql)?;
    if audited != indexed {
        return Err(storage(format!(
            "COPY took {audited} audit rows of the {indexed} read"
        )));
    }

    tracing::info!(
        events = indexed,
        secs = started.elapsed().as_secs_f64(),
        "bulk replay: log read, folded and audit rows copied"
    );
    let phase = std::time::Instant::now();

    // Whole tables, the most work first, to whichever connection is free:
    // the audit index's keys (its rows are in), each inline table's rows
    // and then its keys.
    let mut jobs: Vec<Job> = INLINE_TABLES
        .iter()
        .map(|table| Job {
            table: table.name,
            rows: Some(*table),
            work: tables.rows_of(table).count() * (1 + deferred.of(table.name).len()),
        })
        .collect();
    jobs.push(Job {
        table: "audit_index",
        rows: None,
        work: indexed as usize * deferred.of("audit_index").len(),
    });
    jobs.sort_by_key(|job| std::cmp::Reverse(job.work));
    let queue = Mutex::new(VecDeque::from(jobs));
    let tables = Arc::new(tables);
    let (one, two) = tokio::join!(
        load(&mut reader, schema, &queue, tables.clone(), &deferred),
        load(&mut loader, schema, &queue, tables, &deferred),
    );
    one?;
    two?;
    tracing::info!(
        secs = phase.elapsed().as_secs_f64(),
        "bulk replay: inline tables copied, keys and indexes built"
    );
    Ok(last)
}

/// One table's share of the load.
struct Job {
    table: &'static str,
    /// The inline table whose folded rows are copied first; none for the
    /// audit index, whose rows streamed in with the log.
    rows: Option<&'static Table>,
    work: usize,
}

/// Takes jobs until none is left.
async fn load(
    conn: &mut PgConnection,
    schema: &str,
    queue: &Mutex<VecDeque<Job>>,
    tables: Arc<Tables>,
    deferred: &Deferred,
) -> Result<(), ProjectorError> {
    // Sorts for the index builds in memory rather than on disk.
    sqlx::Executor::execute(&mut *conn, "SET maintenance_work_mem = '256MB'").await?;
    let mut tables = Some(tables);
    let next = || queue.lock().ok().and_then(|mut jobs| jobs.pop_front());
    while let Some(job) = next() {
        let started = std::time::Instant::now();
        if let (Some(table), Some(rows)) = (job.rows, &tables) {
            copy_table(conn, schema, rows, table).await?;
        }
        let copied = started.elapsed().as_secs_f64();
        let copies_left = queue
            .lock()
            .map(|jobs| jobs.iter().any(|job| job.rows.is_some()))
            .unwrap_or(false);
        if !copies_left {
            release(tables.take());
        }
        for statement in deferred.of(job.table) {
            sqlx::Executor::execute(&mut *conn, statement.as_str()).await?;
        }
        tracing::debug!(
            table = job.table,
            copied,
            built = started.elapsed().as_secs_f64() - copied,
            "bulk replay: table loaded"
        );
    }
    release(tables.take());
    sqlx::Executor::execute(&mut *conn, "RESET maintenance_work_mem").await?;
    Ok(())
}

/// Freeing millions of rows takes a second or more: the last holder hands
/// them to a thread of their own, which runs beside the index builds and,
/// unlike the runtime's blocking pool, does not hold up a process's exit.
fn release(tables: Option<Arc<Tables>>) {
    if let Some(tables) = tables.and_then(Arc::into_inner) {
        std::thread::spawn(move || drop(tables));
    }
}

type Folded = (Tables, Option<Cursor>, u64);

/// Events per hand-over from the reader to the fold.
const HANDOVER: usize = 1024;

/// Events on their way from the reader to the fold, with their audit rows
/// written up to the two columns only the fold can fill in.
#[derive(Default)]
struct Batch {
    events: Vec<Decoded>,
    audit: Vec<u8>,
}

struct Decoded {
    cursor: Cursor,
    changes: Vec<Change>,
    /// Where this event's audit columns end in [`Batch::audit`].
    audit_end: usize,
    /// Client and subject as the event itself names them.
    client: Option<String>,
    subject: Option<String>,
    /// The row that names them otherwise, looked up once the event's own
    /// changes are applied.
    named_by: NamedBy,
}

enum NamedBy {
    Itself,
    Grant(String),
    Session(String),
}

/// Reads the log and decodes each event's changes and audit columns; the
/// fold, on a thread of its own, applies them. Decoding is most of the
/// work and does not depend on the tables, so the two halves run side by
/// side.
async fn read_log(
    reader: &mut PgConnection,
    until: Until,
    progress: &mut Progress,
    on_progress: &mut dyn FnMut(&Progress),
    batches: mpsc::Sender<Batch>,
) -> Result<(), ProjectorError> {
    let mut batch = Batch::default();
    let (mut position_text, mut cursor_text) = (String::new(), String::new());
    let mut recorded_at = String::new();
    let mut rows = sqlx::query(LOG_STREAM).fetch(&mut *reader);
    while let Some(row) = rows.try_next().await? {
        let cursor = Cursor {
            txid: row.try_get(column::TXID)?,
            position: row.try_get(column::POSITION)?,
        };
        recorded_at.clear();
        inline::write_timestamp(&row.try_get(column::RECORDED_AT)?, &mut recorded_at);
        if !until.admits_at(cursor, &recorded_at) {
            break;
        }
        let head = EventHead {
            aggregate_type: row.try_get(column::AGGREGATE_TYPE)?,
            aggregate_id: row.try_get(column::AGGREGATE_ID)?,
            event_type: row.try_get(column::EVENT_TYPE)?,
            event_version: row.try_get(column::EVENT_VERSION)?,
            position: cursor.position,
            cursor,
        };
        let payload: &str = row.try_get(column::PAYLOAD)?;
        let changes = inline::changes(head, &payload)?;
        position_text.clear();
        cursor_text.clear();
        let _ = write!(position_text, "{}", cursor.position);
        let _ = write!(cursor_text, "{cursor}");
        copy_line(
            [
                Some(position_text.as_str()),
                Some(cursor_text.as_str()),
                Some(recorded_at.as_str()),
                Some(head.aggregate_type),
                Some(head.aggregate_id),
                Some(head.event_type),
                actor(row.try_get(column::METADATA)?).as_deref(),
            ],
            &mut batch.audit,
        );
        // The line goes on with client and subject.
        batch.audit.pop();
        batch.audit.push(b'\t');
        let named_client: Option<&str> = row.try_get(column::NAMED_CLIENT)?;
        let named_sub: Option<&str> = row.try_get(column::NAMED_SUB)?;
        let (client, named_by) = match head.aggregate_type {
            "Client" => (Some(head.aggregate_id), NamedBy::Itself),
            "Consent" => (named_client, NamedBy::Itself),
            "Grant" => (None, NamedBy::Grant(head.aggregate_id.to_owned())),
            "Session" => (None, NamedBy::Session(head.aggregate_id.to_owned())),
            _ => (None, NamedBy::Itself),
        };
        batch.events.push(Decoded {
            cursor,
            changes,
            audit_end: batch.audit.len(),
            client: client.map(str::to_owned),
            subject: named_sub.map(str::to_owned),
            named_by,
        });
        progress.replayed += 1;
        if progress.replayed % REPORT_EVERY == 0 {
            on_progress(progress);
        }
        if batch.events.len() >= HANDOVER && batches.send(std::mem::take(&mut batch)).await.is_err()
        {
            // The fold stopped; its error is the one to report.
            return Ok(());
        }
    }
    if !batch.events.is_empty() {
        let _ = batches.send(batch).await;
    }
    on_progress(progress);
    Ok(())
}

/// Applies the events' changes in log order and completes their audit
/// rows, which go to `chunks` as they fill.
fn fold(
    mut batches: mpsc::Receiver<Batch>,
    chunks: mpsc::Sender<Vec<u8>>,
) -> Result<Folded, ProjectorError> {
    let mut tables = Tables::default();
    let mut last = None;
    let mut indexed = 0_u64;
    let mut audit = Vec::with_capacity(CHUNK + 4096);
    while let Some(batch) = batches.blocking_recv() {
        let mut from = 0;
        for mut event in batch.events {
            for change in std::mem::take(&mut event.changes) {
                tables
                    .apply(change)
                    .map_err(|err| ProjectorError::Invalid(format!("{err} at {}", event.cursor)))?;
            }
            let (client, subject) = audit_names(&tables, &event);
            audit.extend_from_slice(&batch.audit[from..event.audit_end]);
            from = event.audit_end;
            copy_line([client, subject], &mut audit);
            indexed += 1;
            last = Some(event.cursor);
        }
        if audit.len() >= CHUNK {
            let full = std::mem::replace(&mut audit, Vec::with_capacity(CHUNK + 4096));
            if chunks.blocking_send(full).is_err() {
                // The COPY failed; its error is the one to report.
                return Ok((tables, last, indexed));
            }
        }
    }
    if !audit.is_empty() {
        let _ = chunks.blocking_send(audit);
    }
    Ok((tables, last, indexed))
}

/// `metadata ->> 'actor'`: a string as itself, null or none as none,
/// anything else as its JSON text.
fn actor(metadata: &str) -> Option<Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    struct Actor<'a> {
        #[serde(borrow)]
        actor: Option<Cow<'a, str>>,
    }
    match serde_json::from_str::<Actor<'_>>(metadata) {
        Ok(Actor { actor }) => actor,
        Err(_) => serde_json::from_str::<serde_json::Value>(metadata)
            .ok()?
            .get("actor")
            .filter(|actor| !actor.is_null())
            .map(|actor| Cow::Owned(actor.to_string())),
    }
}

/// Client and subject of an event's audit row, as the live index's
/// `coalesce(…)` finds them.
fn audit_names<'a>(tables: &'a Tables, event: &'a Decoded) -> (Option<&'a str>, Option<&'a str>) {
    let (client, subject) = (event.client.as_deref(), event.subject.as_deref());
    match &event.named_by {
        NamedBy::Itself => (client, subject),
        NamedBy::Grant(gid) => (
            client.or_else(|| tables.value(&GRANTS, gid, "client_id")),
            subject.or_else(|| tables.value(&GRANTS, gid, "sub")),
        ),
        NamedBy::Session(sid) => (
            client,
            subject.or_else(|| tables.value(&SESSIONS, sid, "sub")),
        ),
    }
}

/// Sends the chunks to one COPY; the connection and the rows it took.
async fn copy_stream(
    mut conn: PgConnection,
    statement: String,
    mut chunks: mpsc::Receiver<Vec<u8>>,
) -> Result<(PgConnection, u64), sqlx::Error> {
    let mut copy = conn.copy_in_raw(&statement).await?;
    while let Some(chunk) = chunks.recv().await {
        copy.send(chunk).await?;
    }
    let rows = copy.finish().await?;
    Ok((conn, rows))
}

async fn copy_table(
    conn: &mut PgConnection,
    schema: &str,
    tables: &Tables,
    table: &'static Table,
) -> Result<(), ProjectorError> {
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {schema}.{} ({}) FROM STDIN",
            table.name,
            table.columns.join(", ")
        ))
        .await?;
    let mut chunk = Vec::with_capacity(CHUNK + 4096);
    let mut expected = 0_u64;
    for row in tables.rows_of(table) {
        copy_line(row.iter().map(Option::as_deref), &mut chunk);
        expected += 1;
        if chunk.len() >= CHUNK {
            copy.send(std::mem::replace(
                &mut chunk,
                Vec::with_capacity(CHUNK + 4096),
            ))
            .await?;
        }
    }
    if !chunk.is_empty() {
        copy.send(chunk).await?;
    }
    let copied = copy.finish().await?;
    if copied != expected {
        return Err(storage(format!(
            "COPY took {copied} rows of {expected} into {}",
            table.name
        )));
    }
    Ok(())
}

/// The keys and indexes of a schema's tables, dropped before the load and
/// built after it from their own catalogue definitions.
struct Deferred {
    /// Per table: `ALTER TABLE … ADD CONSTRAINT …` first, then `CREATE INDEX …`.
    by_table: Vec<(String, Vec<String>)>,
}

impl Deferred {
    async fn take(conn: &mut Conn, schema: &str) -> Result<Self, ProjectorError> {
        let constraints = conn
            .fetch_all(
                &Statement::new(
                    "SELECT t.relname AS tbl, format('%I.%I', n.nspname, t.relname) AS qualified,
                            c.conname AS name, pg_get_constraintdef(c.oid) AS def
                     FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
                     JOIN pg_namespace n ON n.oid = t.relnamespace
                     WHERE n.nspname = $1 AND c.contype IN ('p', 'u') ORDER BY 1, 3",
                )
                .text(schema),
            )
            .await?;
        let indexes = conn
            .fetch_all(
                &Statement::new(
                    "SELECT i.tablename AS tbl, format('%I.%I', i.schemaname, i.indexname) AS name,
                            i.indexdef AS def
                     FROM pg_indexes i WHERE i.schemaname = $1
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                                     WHERE c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)
                     ORDER BY 1, 2",
                )
                .text(schema),
            )
            .await?;
        let field = |row: &writ_infra::store::Row, column| row.text(column).unwrap_or_default();
        let mut drops = Vec::new();
        let mut deferred = Self {
            by_table: Vec::new(),
        };
        for row in &constraints {
            let (table, name) = (field(row, "qualified"), field(row, "name"));
            drops.push(format!("ALTER TABLE {table} DROP CONSTRAINT \"{name}\""));
            deferred.add(
                field(row, "tbl"),
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT \"{name}\" {}",
                    field(row, "def")
                ),
            );
        }
        for row in &indexes {
            drops.push(format!("DROP INDEX {}", field(row, "name")));
            deferred.add(field(row, "tbl"), field(row, "def"));
        }
        // Indexes first: a constraint's index goes with the constraint.
        drops.reverse();
        conn.batch(&drops.join(";\n")).await?;
        Ok(deferred)
    }

    fn add(&mut self, table: String, statement: String) {
        match self.by_table.iter_mut().find(|(name, _)| *name == table) {
            Some((_, statements)) => statements.push(statement),
            None => self.by_table.push((table, vec![statement])),
        }
    }

    fn of(&self, table: &str) -> &[String] {
        self.by_table
            .iter()
            .find(|(name, _)| name == table)
            .map(|(_, statements)| statements.as_slice())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actor_reads_as_the_databases_text_operator_reads_it() {
        let cases = [
            (r#"{"actor":"cli:ops","request_id":"r"}"#, Some("cli:ops")),
            (
                r#"{"request_id":"r","actor":"a \"quoted\" \u00e9"}"#,
                Some("a \"quoted\" é"),
            ),
            (r#"{"actor":null}"#, None),
            (r#"{"request_id":"r"}"#, None),
            (r#"{"actor":42}"#, Some("42")),
            (r#"{"actor":{"sub":"s"}}"#, Some(r#"{"sub":"s"}"#)),
            ("not json", None),
        ];
        for (metadata, expected) in cases {
            assert_eq!(actor(metadata).as_deref(), expected, "{metadata}");
        }
    }
}
