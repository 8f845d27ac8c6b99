//! Rebuilds every rebuildable table from the log into fresh tables, with
//! the same statements the committer and the projector use, and compares
//! them with the live tables row for row inside one snapshot. SQLite
//! rebuilds into an attached scratch file; PostgreSQL into a schema created
//! and dropped inside one REPEATABLE READ transaction that is rolled back.

use writ_store::schema::{read_tables_ddl, REBUILDABLE_TABLES};
use writ_store::statement::Statement;
use writ_store::{Conn, Dialect, RowExt, Store, Target};

use crate::replay::{attach_scratch, detach_scratch, replay, Pass, Progress, Until};
use crate::{ProjectorError, PROJECTION};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDifference {
    pub table: String,
    pub only_live: i64,
    pub only_rebuilt: i64,
    /// Every differing row, live-only ones first.
    pub rows: Vec<RowDifference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// In the live table, not in the rebuild.
    Live,
    /// In the rebuild, not in the live table.
    Rebuilt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDifference {
    pub side: Side,
    /// The row as a JSON object.
    pub row: String,
}

/// Returns the tables whose rebuilt rows differ from the live ones; empty
/// means the read model is exactly what the log says. The audit index is
/// compared up to the projector's checkpoint, the inline tables in full.
pub async fn rebuild_and_compare(store: &Store) -> Result<Vec<TableDifference>, ProjectorError> {
    rebuild_and_compare_with_progress(store, &mut |_| {}).await
}

/// [`rebuild_and_compare`], reporting the replay's progress.
pub async fn rebuild_and_compare_with_progress(
    store: &Store,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<TableDifference>, ProjectorError> {
    let mut conn = Conn::connect(store.target()).await?;
    match store.target() {
        Target::Sqlite(path) => {
            let scratch = attach_scratch(&mut conn, path, "rebuild").await?;
            let outcome = compare(&mut conn, "rebuild", on_progress).await;
            detach_scratch(&mut conn, "rebuild", &scratch).await;
            outcome
        }
        Target::Postgres(_) => compare(&mut conn, "writ_rebuild", on_progress).await,
    }
}

async fn compare(
    conn: &mut Conn,
    scratch: &str,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<TableDifference>, ProjectorError> {
    let dialect = conn.dialect();
    match dialect {
        // One transaction: the live tables and the events are read from the
        // same snapshot, while only the scratch database is written.
        Dialect::Sqlite => {
            conn.batch(&read_tables_ddl(scratch, dialect)).await?;
            conn.batch("BEGIN").await?;
        }
        Dialect::Postgres => {
            conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ").await?;
            conn.batch(&format!("CREATE SCHEMA {scratch}")).await?;
            conn.batch(&read_tables_ddl(scratch, dialect)).await?;
        }
    }
    let outcome = replay_and_diff(conn, scratch, on_progress).await;
    // Nothing of the rebuild is kept on PostgreSQL; on SQLite the scratch
    // file is deleted by the caller.
    let _ = conn
        .batch(if dialect == Dialect::Postgres {
            "ROLLBACK"
        } else {
            "COMMIT"
        })
        .await;
    outcome
}

async fn replay_and_diff(
    conn: &mut Conn,
    scratch: &str,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<TableDifference>, ProjectorError> {
    let live = conn.dialect().live_schema();
    let checkpoint = crate::read_checkpoint(conn, PROJECTION).await?;
    let pass = Pass {
        scratch,
        after: None,
        until: Until::Head,
        audit_until: Until::Cursor(checkpoint),
        // One snapshot: what it sees of the log and of the live tables
        // agree, whatever commits later.
        bounded: false,
        commit_pages: false,
    };
    let mut progress = Progress::start(conn).await?;
    replay(conn, pass, &mut progress, on_progress).await?;
    let mut differences = Vec::new();
    for table in REBUILDABLE_TABLES {
        let mut rows = rows_only_in(conn, table, live, scratch, Side::Live).await?;
        rows.extend(rows_only_in(conn, table, scratch, live, Side::Rebuilt).await?);
        if !rows.is_empty() {
            let count = |side| rows.iter().filter(|row| row.side == side).count() as i64;
            differences.push(TableDifference {
                table: (*table).to_owned(),
                only_live: count(Side::Live),
                only_rebuilt: count(Side::Rebuilt),
                rows,
            });
        }
    }
    Ok(differences)
}

/// The rows of `table` in schema `left` that `right` does not have, each
/// as a JSON object, secrets' hashes replaced by a short fingerprint.
async fn rows_only_in(
    conn: &mut Conn,
    table: &str,
    left: &str,
    right: &str,
    side: Side,
) -> Result<Vec<RowDifference>, ProjectorError> {
    let as_json = match conn.dialect() {
        Dialect::Postgres => "to_jsonb(d)::text".to_owned(),
        Dialect::Sqlite => {
            let columns = conn
                .fetch_all(
                    &Statement::new("SELECT name FROM pragma_table_info($1, $2)")
                        .text(table)
                        .text(left),
                )
                .await?;
            let pairs: Vec<String> = columns
                .iter()
                .filter_map(|row| row.text("name"))
                .map(|name| format!("'{name}', d.{name}"))
                .collect();
            format!("json_object({})", pairs.join(", "))
        }
    };
    let rows = conn
        .fetch_all(&Statement::new(format!(
            "SELECT {as_json} AS row FROM (SELECT * FROM {left}.{table} EXCEPT SELECT * FROM {right}.{table}) AS d ORDER BY 1"
        )))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| row.text("row"))
        .map(|row| RowDifference {
            side,
            row: fingerprint_secrets(&row),
        })
        .collect())
}

/// Columns whose values are secrets' hashes: a difference shows as two
/// fingerprints, never as the stored value.
const SECRET_COLUMNS: &[&str] = &["password_hash", "secret_hash"];

fn fingerprint_secrets(row: &str) -> String {
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(row) else {
        return row.to_owned();
    };
    for column in SECRET_COLUMNS {
        if let Some(serde_json::Value::String(value)) = fields.get(*column) {
            let digest = writ_infra::crypto::sha256_hex(value.as_bytes());
            fields.insert(
                (*column).to_owned(),
                serde_json::Value::String(format!("sha256:{}…", &digest[..12])),
            );
        }
    }
    serde_json::Value::Object(fields).to_string()
}
