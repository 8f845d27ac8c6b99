//! Rebuilds every rebuildable table from the log into fresh tables, with
//! the same statements the committer and the projector use, and compares
//! them with the live tables row for row inside one snapshot. SQLite
//! rebuilds into an attached scratch file; PostgreSQL into a schema created
//! and dropped inside one REPEATABLE READ transaction that is rolled back.

use writ_infra::store::schema::{read_tables_ddl, REBUILDABLE_TABLES};
use writ_infra::store::statement::Statement;
use writ_infra::store::{
    event_columns, inline, log_order, Conn, Dialect, RowExt, Store, StoredEvent, Target,
};

use crate::{audit, ProjectorError, PROJECTION};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDifference {
    pub table: String,
    pub only_live: i64,
    pub only_rebuilt: i64,
}

const PAGE: i64 = 1000;

/// Returns the tables whose rebuilt rows differ from the live ones; empty
/// means the read model is exactly what the log says. The audit index is
/// compared up to the projector's checkpoint, the inline tables in full.
pub async fn rebuild_and_compare(store: &Store) -> Result<Vec<TableDifference>, ProjectorError> {
    let mut conn = Conn::connect(store.target()).await?;
    match store.target() {
        Target::Sqlite(path) => {
            let scratch = path.with_file_name(format!("rebuild-{}.db", uuid::Uuid::new_v4()));
            conn.execute(&[
                Statement::new("ATTACH DATABASE $1 AS rebuild").text(scratch.display().to_string())
            ])
            .await?;
            let outcome = compare(&mut conn, "rebuild").await;
            let _ = conn.batch("DETACH DATABASE rebuild").await;
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", scratch.display()));
            }
            outcome
        }
        Target::Postgres(_) => compare(&mut conn, "writ_rebuild").await,
    }
}

async fn compare(conn: &mut Conn, scratch: &str) -> Result<Vec<TableDifference>, ProjectorError> {
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
    let outcome = replay_and_diff(conn, scratch).await;
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
) -> Result<Vec<TableDifference>, ProjectorError> {
    let dialect = conn.dialect();
    let live = dialect.live_schema();
    let checkpoint = conn
        .fetch_optional(
            &Statement::new(format!(
                "SELECT txid, position FROM {live}.projector_checkpoints WHERE projection = $1"
            ))
            .text(PROJECTION),
        )
        .await?
        .map(|row| {
            (
                row.int("txid").unwrap_or(0),
                row.int("position").unwrap_or(0),
            )
        })
        .unwrap_or((0, 0));
    let (columns, order) = (event_columns(dialect), log_order(dialect));
    let mut offset = 0_i64;
    loop {
        let page = Statement::new(format!(
            "SELECT {columns} FROM {live}.events ORDER BY {order} LIMIT $1 OFFSET $2"
        ))
        .int(PAGE)
        .int(offset);
        let rows = conn.fetch_all(&page).await?;
        if rows.is_empty() {
            break;
        }
        offset += rows.len() as i64;
        let mut statements = Vec::new();
        let mut projected = Vec::new();
        for row in &rows {
            let event = StoredEvent::from_row(row)?;
            statements.extend(inline::statements(scratch, &event)?);
            if (event.txid, event.position) <= checkpoint {
                projected.push(event.position);
            }
        }
        // After the page's inline rows, which the audit rows may join.
        if !projected.is_empty() {
            statements.push(audit::insert_events(dialect, scratch, live, &projected));
        }
        conn.execute(&statements).await?;
    }
    let mut differences = Vec::new();
    for table in REBUILDABLE_TABLES {
        let count = |left: &str, right: &str| {
            Statement::new(format!(
                "SELECT count(*) AS n FROM (SELECT * FROM {left}.{table} EXCEPT SELECT * FROM {right}.{table}) AS difference"
            ))
        };
        let only_live = conn
            .fetch_optional(&count(live, scratch))
            .await?
            .and_then(|r| r.int("n"))
            .unwrap_or(0);
        let only_rebuilt = conn
            .fetch_optional(&count(scratch, live))
            .await?
            .and_then(|r| r.int("n"))
            .unwrap_or(0);
        if only_live + only_rebuilt > 0 {
            differences.push(TableDifference {
                table: (*table).to_owned(),
                only_live,
                only_rebuilt,
            });
        }
    }
    Ok(differences)
}
