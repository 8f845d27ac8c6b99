//! The bulk replay, on PostgreSQL: the log is read in one snapshot as one
//! stream, every event's changes are applied to the inline tables in
//! memory ([`writ_store::fold`]), and the rows are loaded with COPY
//! into tables whose keys and indexes are built afterwards. The statement
//! replay sends about two upserts per event, each parsed and planned; this
//! sends each final row once.
//!
//! The audit index is final per event, so its rows stream into their table
//! on a second connection while the log is still being read. Client and
//! subject are found as [`writ_store::views::audit_index_rows`] finds them: in the
//! event where it names them, else in the grant's or session's row.

use std::borrow::Cow;
use std::fmt::Write as _;

use cqrs_es::Aggregate as _;
use futures::TryStreamExt;
use sqlx::postgres::PgConnection;
use sqlx::Row as _;
use tokio::sync::mpsc;
use writ_domain::client::Client;
use writ_domain::client_assertion::ClientAssertion;
use writ_domain::consent::Consent;
use writ_domain::dpop_proof::DpopProof;
use writ_domain::grant::Grant;
use writ_domain::pushed_request::PushedRequest;
use writ_domain::session::Session;
use writ_store::change::Change;
use writ_store::fold::{copy_line, Tables};
use writ_store::inline::{self, EventHead};
use writ_store::views::{GRANTS, SESSIONS};
use writ_store::{Conn, Cursor, Target};

use crate::progress::{Progress, Until};
use crate::ProjectorError;
use load::Deferred;

mod load;

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
     CASE WHEN aggregate_type IN ('Consent', 'PushedRequest', 'ClientAssertion', 'DpopProof') THEN payload -> event_type ->> 'client_id' END AS named_client \
     FROM events WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY events.txid, events.position";
/// [`LOG_STREAM`]'s columns by place: a name is a hash lookup, per column
/// per event. Their types are the query's own casts, so they are read
/// without sqlx's check of each value's type, which cloned a type
/// descriptor per column per event.
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
        Conn::Sqlite(_) | Conn::Embedded(_) => Err(ProjectorError::Invalid(
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

    let loaded = load::load(
        [&mut reader, &mut loader],
        schema,
        &tables,
        indexed,
        deferred,
    )
    .await;
    release(tables);
    loaded?;
    // Rows were named as of their event; the live index names a grant's
    // subject in all its rows once the grant has one.
    let backfill =
        crate::audit::audit_subject_backfill(writ_store::Dialect::Postgres, schema, schema, None);
    sqlx::Executor::execute(&mut reader, backfill.sql.as_str()).await?;
    tracing::info!(
        secs = phase.elapsed().as_secs_f64(),
        "bulk replay: inline tables copied, keys and indexes built"
    );
    Ok(last)
}

/// Freeing millions of rows takes a second or more: after the load, not
/// beside its index builds, and on a thread of its own, which, unlike the
/// runtime's blocking pool, does not hold up a process's exit.
fn release(tables: Tables) {
    std::thread::spawn(move || drop(tables));
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
            txid: row.try_get_unchecked(column::TXID)?,
            position: row.try_get_unchecked(column::POSITION)?,
        };
        recorded_at.clear();
        inline::write_timestamp(
            &row.try_get_unchecked(column::RECORDED_AT)?,
            &mut recorded_at,
        );
        if !until.admits_at(cursor, &recorded_at) {
            break;
        }
        let head = EventHead {
            aggregate_type: row.try_get_unchecked(column::AGGREGATE_TYPE)?,
            aggregate_id: row.try_get_unchecked(column::AGGREGATE_ID)?,
            event_type: row.try_get_unchecked(column::EVENT_TYPE)?,
            event_version: row.try_get_unchecked(column::EVENT_VERSION)?,
            position: cursor.position,
            cursor,
        };
        let payload: &str = row.try_get_unchecked(column::PAYLOAD)?;
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
                actor(row.try_get_unchecked(column::METADATA)?).as_deref(),
            ],
            &mut batch.audit,
        );
        // The line goes on with client and subject.
        batch.audit.pop();
        batch.audit.push(b'\t');
        let named_client: Option<&str> = row.try_get_unchecked(column::NAMED_CLIENT)?;
        let named_sub: Option<&str> = row.try_get_unchecked(column::NAMED_SUB)?;
        let (client, named_by) = match head.aggregate_type {
            Client::TYPE => (Some(head.aggregate_id), NamedBy::Itself),
            Consent::TYPE | PushedRequest::TYPE | ClientAssertion::TYPE | DpopProof::TYPE => {
                (named_client, NamedBy::Itself)
            }
            Grant::TYPE => (None, NamedBy::Grant(head.aggregate_id.to_owned())),
            Session::TYPE => (None, NamedBy::Session(head.aggregate_id.to_owned())),
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
