//! Replaying the log into fresh tables: every event from the start, in
//! global order, through the same statements the committer and the
//! projector use. The replay never reads the wall clock; what is active or
//! expired comes from the events' own times.
//!
//! Its callers: the verification in [`crate::rebuild`], inside one
//! snapshot, the swap, and [`replay_into_snapshot`] on SQLite, which keeps
//! the state at a cursor or a time in tables of its own and commits page by
//! page. On PostgreSQL a snapshot is loaded by [`crate::bulk`] instead.

use std::path::{Path, PathBuf};

use writ_store::schema::read_tables_ddl;
use writ_store::statement::{Bind, Statement};
use writ_store::{after_cursor, event_columns, inline, Conn, Cursor, Dialect, StoredEvent, Target};

pub use crate::progress::{Progress, Until};
use crate::{audit, ProjectorError};

pub(crate) const PAGE: i64 = 2000;

/// What a finished replay covered.
#[derive(Debug, Clone, Copy)]
pub struct Replayed {
    /// The last event applied; `None` when none was.
    pub last: Option<Cursor>,
    pub progress: Progress,
}

/// One pass of a replay: into which tables, from where, how far.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pass<'a> {
    /// The schema (or attached database) whose tables receive the rows.
    pub scratch: &'a str,
    /// Where the pass starts: after this event, or at the log's start.
    pub after: Option<Cursor>,
    pub until: Until,
    /// Audit rows are made for events up to here (the verification
    /// indexes only what the live projector has).
    pub audit_until: Until,
    /// Below PostgreSQL's global-order bound only: a pass outside one
    /// snapshot, which a later commit with a lower cursor must not pass.
    pub bounded: bool,
    /// Each page its own transaction; otherwise the caller's holds them.
    pub commit_pages: bool,
}

impl<'a> Pass<'a> {
    /// The whole log up to `until`, committed page by page.
    pub fn committed(scratch: &'a str, until: Until) -> Self {
        Self {
            scratch,
            after: None,
            until,
            audit_until: until,
            bounded: true,
            commit_pages: true,
        }
    }
}

/// Replays a pass into its tables, which exist (and are empty, or hold the
/// pass's predecessor), counting its events into `progress`. Returns the
/// last event applied, or the pass's start when there was none.
pub(crate) async fn replay(
    conn: &mut Conn,
    pass: Pass<'_>,
    progress: &mut Progress,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Option<Cursor>, ProjectorError> {
    let Pass {
        scratch,
        until,
        audit_until,
        ..
    } = pass;
    let dialect = conn.dialect();
    let live = dialect.live_schema();
    let mut last: Option<Cursor> = pass.after;
    if dialect == Dialect::Postgres {
        conn.batch(PAGE_FUNCTION).await?;
    }
    loop {
        let rows = conn
            .fetch_all(&after_cursor(
                dialect,
                event_columns(dialect),
                last.unwrap_or_default(),
                PAGE,
                pass.bounded,
            ))
            .await?;
        let mut statements = Vec::new();
        let mut indexed = Vec::new();
        let mut arrivals = Vec::new();
        let mut reached_end = rows.len() < PAGE as usize;
        for row in &rows {
            let event = StoredEvent::from_row(row)?;
            if !until.admits(&event) {
                reached_end = true;
                break;
            }
            statements.extend(inline::statements(scratch, &event)?);
            if audit_until.admits(&event) {
                indexed.push(event.position);
                if audit::SUBJECT_ARRIVES.contains(&event.event_type.as_str()) {
                    arrivals.push(event.position);
                }
            }
            last = Some(event.cursor());
            progress.replayed += 1;
        }
        // After the page's inline rows, which the audit rows may join.
        if !indexed.is_empty() {
            statements.push(audit::audit_index_rows(dialect, scratch, live, &indexed));
        }
        if !arrivals.is_empty() {
            statements.push(audit::audit_subject_backfill(
                dialect,
                scratch,
                live,
                Some(&arrivals),
            ));
        }
        if pass.commit_pages && !statements.is_empty() {
            // Deferred: on SQLite only the scratch database is locked, so
            // the live committer goes on between pages.
            conn.batch("BEGIN").await?;
            apply_page(conn, &statements).await?;
            conn.batch("COMMIT").await?;
        } else {
            apply_page(conn, &statements).await?;
        }
        on_progress(progress);
        if reached_end {
            break;
        }
    }
    Ok(last)
}

/// The most parameters one page statement takes: the widest inline row.
const PAGE_PARAMETERS: usize = 16;

/// Runs a page's statements with their values bound, never spliced into
/// the SQL: the values come from the log, which anyone who can register a
/// client writes into. On SQLite each statement is a call into the
/// library. On PostgreSQL one call per statement would cost a round trip
/// each (three times the replay's time), so the page goes as one call of
/// [`PAGE_FUNCTION`], which runs each statement with `EXECUTE … USING`
/// (ADR 0016).
async fn apply_page(conn: &mut Conn, statements: &[Statement]) -> Result<(), ProjectorError> {
    let page = match conn.dialect() {
        Dialect::Postgres if !statements.is_empty() => statements
            .iter()
            .map(page_entry)
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    match page {
        Some(page) => {
            let call = Statement::new("SELECT pg_temp.writ_replay_page($1::jsonb)")
                .text(serde_json::Value::Array(page).to_string());
            conn.execute(&[call]).await?;
        }
        // SQLite, or not a page of inline changes: one statement at a time.
        None => {
            conn.execute(statements).await?;
        }
    }
    Ok(())
}

/// A statement as the page function takes it, `[sql, [values…]]`: only
/// text values, at most [`PAGE_PARAMETERS`] of them.
fn page_entry(statement: &Statement) -> Option<serde_json::Value> {
    if statement.binds.len() > PAGE_PARAMETERS {
        return None;
    }
    let values = statement
        .binds
        .iter()
        .map(|bind| match bind {
            Bind::Text(text) => Some(serde_json::Value::from(text.clone())),
            Bind::Int(_) | Bind::Texts(_) => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(serde_json::json!([statement.sql, values]))
}

/// Runs `[sql, [text values…]]` pairs in order, each with its values as
/// the parameters `$1…$16` (text; unused ones are null). A temporary
/// function: it lives and dies with the replay's connection, created
/// once per replay.
const PAGE_FUNCTION: &str = "CREATE OR REPLACE FUNCTION pg_temp.writ_replay_page(page jsonb) RETURNS void \
     LANGUAGE plpgsql AS $body$ DECLARE s jsonb; BEGIN \
     FOR s IN SELECT e.value FROM jsonb_array_elements(page) WITH ORDINALITY AS e(value, n) ORDER BY e.n LOOP \
     EXECUTE s->>0 USING s->1->>0, s->1->>1, s->1->>2, s->1->>3, s->1->>4, s->1->>5, s->1->>6, s->1->>7, \
     s->1->>8, s->1->>9, s->1->>10, s->1->>11, s->1->>12, s->1->>13, s->1->>14, s->1->>15; \
     END LOOP; END $body$";

/// A scratch file beside the SQLite database `database`, attached as
/// `alias` for one rebuild; [`detach_scratch`] deletes it.
pub(crate) async fn attach_scratch(
    conn: &mut Conn,
    database: &Path,
    alias: &str,
) -> Result<PathBuf, ProjectorError> {
    let scratch = database.with_file_name(format!("{alias}-{}.db", uuid::Uuid::new_v4()));
    conn.execute(&[Statement::new(format!("ATTACH DATABASE $1 AS {alias}"))
        .text(scratch.display().to_string())])
        .await?;
    Ok(scratch)
}

pub(crate) async fn detach_scratch(conn: &mut Conn, alias: &str, scratch: &Path) {
    let _ = conn.batch(&format!("DETACH DATABASE {alias}")).await;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", scratch.display()));
    }
}

/// A snapshot's tables: on PostgreSQL the schema `snapshot_<name>`, on
/// SQLite the file `snapshot-<name>.db` beside the database.
pub fn snapshot_location(target: &Target, name: &str) -> String {
    match target {
        Target::Sqlite(path) => path
            .with_file_name(format!("snapshot-{name}.db"))
            .display()
            .to_string(),
        Target::Postgres(_) => format!("snapshot_{name}"),
    }
}

/// Snapshot names become schema and file names: short, lower case.
pub fn check_snapshot_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "snapshot name {name:?}: use 1 to 40 of a-z, 0-9 and _"
        ))
    }
}

/// Replays the log up to `until` into the snapshot `name`, which must not
/// exist yet; the live tables are only read.
pub async fn replay_into_snapshot(
    target: &Target,
    name: &str,
    until: Until,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Replayed, ProjectorError> {
    check_snapshot_name(name).map_err(ProjectorError::Invalid)?;
    let location = snapshot_location(target, name);
    let mut conn = Conn::connect(target).await?;
    let dialect = conn.dialect();
    let schema = match dialect {
        Dialect::Sqlite => {
            if std::path::Path::new(&location).exists() {
                return Err(ProjectorError::Invalid(format!(
                    "snapshot {name} exists ({location}); delete it or choose another name"
                )));
            }
            conn.execute(&[Statement::new("ATTACH DATABASE $1 AS snapshot").text(location)])
                .await?;
            conn.batch(&read_tables_ddl("snapshot", dialect)).await?;
            "snapshot".to_owned()
        }
        Dialect::Postgres => {
            let exists = conn
                .fetch_optional(
                    &Statement::new("SELECT 1 AS n FROM pg_namespace WHERE nspname = $1")
                        .text(location.clone()),
                )
                .await?
                .is_some();
            if exists {
                return Err(ProjectorError::Invalid(format!(
                    "snapshot {name} exists (schema {location}); drop it or choose another name"
                )));
            }
            conn.batch(&format!(
                "BEGIN; CREATE SCHEMA {location}; {} COMMIT",
                read_tables_ddl(&location, dialect)
            ))
            .await?;
            location
        }
    };
    let mut progress = Progress::start(&mut conn).await?;
    let last = match dialect {
        Dialect::Sqlite => {
            let last = replay(
                &mut conn,
                Pass::committed(&schema, until),
                &mut progress,
                on_progress,
            )
            .await;
            let _ = conn.batch("DETACH DATABASE snapshot").await;
            last
        }
        Dialect::Postgres => {
            let last =
                crate::bulk::replay(target, &schema, until, &mut progress, on_progress).await;
            // A half-loaded snapshot is no snapshot: the name stays free.
            if last.is_err() {
                let _ = conn.batch(&format!("DROP SCHEMA {schema} CASCADE")).await;
            }
            last
        }
    };
    Ok(Replayed {
        last: last?,
        progress,
    })
}
