//! Rebuilds every rebuildable table from the log into a fresh attached
//! database, with the same apply code the committer and the projector use,
//! and compares it with the live tables row for row at one snapshot.

use sqlx::{Connection, SqliteConnection};
use writ_infra::store::inline;
use writ_infra::store::schema::{read_tables_ddl, REBUILDABLE_TABLES};
use writ_infra::store::statement::execute_sqlite;
use writ_infra::store::{connect_options, run_sql, Store, StoredEvent, EVENT_COLUMNS};

use crate::{audit, ProjectorError, PROJECTION};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDifference {
    pub table: String,
    pub only_live: i64,
    pub only_rebuilt: i64,
}

/// Returns the tables whose rebuilt rows differ from the live ones; empty
/// means the read model is exactly what the log says. The audit index is
/// compared up to the projector's checkpoint, the inline tables in full.
pub async fn rebuild_and_compare(store: &Store) -> Result<Vec<TableDifference>, ProjectorError> {
    let scratch = store
        .database_path()
        .with_file_name(format!("rebuild-{}.db", uuid::Uuid::new_v4()));
    let mut conn = SqliteConnection::connect_with(&connect_options(store.database_path())).await?;
    let outcome = compare(&mut conn, &scratch).await;
    let _ = conn.close().await;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", scratch.display()));
    }
    outcome
}

async fn compare(
    conn: &mut SqliteConnection,
    scratch: &std::path::Path,
) -> Result<Vec<TableDifference>, ProjectorError> {
    sqlx::query("ATTACH DATABASE ? AS rebuild")
        .bind(scratch.display().to_string())
        .execute(&mut *conn)
        .await?;
    run_sql(conn, &read_tables_ddl("rebuild")).await?;
    // One transaction: the live tables and the events are read from the
    // same snapshot, while only the scratch database is written.
    run_sql(conn, "BEGIN").await?;
    let checkpoint: i64 = sqlx::query_scalar("SELECT coalesce((SELECT position FROM main.projector_checkpoints WHERE projection = ?), 0)")
        .bind(PROJECTION)
        .fetch_one(&mut *conn)
        .await?;
    let mut after = 0_i64;
    loop {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM main.events WHERE position > ? ORDER BY position LIMIT 1000");
        let rows = sqlx::query(&sql).bind(after).fetch_all(&mut *conn).await?;
        let Some(last) = rows.last() else { break };
        after = sqlx::Row::try_get(last, "position")?;
        let mut statements = Vec::new();
        for row in &rows {
            let event = StoredEvent::from_row(row)?;
            statements.extend(inline::statements("rebuild", &event)?);
            statements.push(audit::statement("rebuild", &event)?);
        }
        execute_sqlite(conn, &statements).await?;
    }
    let mut differences = Vec::new();
    for table in REBUILDABLE_TABLES {
        let filter = if *table == "audit_index" {
            format!(" WHERE position <= {checkpoint}")
        } else {
            String::new()
        };
        let count = |left: &str, right: &str| {
            format!("SELECT count(*) FROM (SELECT * FROM {left}.{table}{filter} EXCEPT SELECT * FROM {right}.{table}{filter})")
        };
        let only_live: i64 = sqlx::query_scalar(&count("main", "rebuild"))
            .fetch_one(&mut *conn)
            .await?;
        let only_rebuilt: i64 = sqlx::query_scalar(&count("rebuild", "main"))
            .fetch_one(&mut *conn)
            .await?;
        if only_live + only_rebuilt > 0 {
            differences.push(TableDifference {
                table: (*table).to_owned(),
                only_live,
                only_rebuilt,
            });
        }
    }
    run_sql(conn, "COMMIT").await?;
    run_sql(conn, "DETACH DATABASE rebuild").await?;
    Ok(differences)
}
