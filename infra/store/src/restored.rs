//! A PostgreSQL log orders events by their writers' transaction ids
//! (ADR 0008), so it can only grow in a cluster whose next transaction id
//! is past every one in the log. A dump restored into another cluster may
//! not be: its new events would sort before the old ones, and a reader
//! that resumed past those would never see them. Such a database is
//! refused before anything is written or read.

use sqlx::PgConnection;

/// `Err` with the line an operator needs when the log is ahead of the
/// cluster. Checked before migrations, so a refused database is left as
/// it was.
pub async fn ensure_cluster_is_ahead(conn: &mut PgConnection) -> Result<(), String> {
    let has_log: bool = sqlx::query_scalar("SELECT to_regclass('events') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    if !has_log {
        return Ok(());
    }
    // xmax of a fresh snapshot is the next transaction id to be assigned;
    // reading it assigns none.
    let ahead: Option<(i64, i64)> = sqlx::query_as(
        "SELECT e.txid::text::bigint, pg_snapshot_xmax(pg_current_snapshot())::text::bigint \
         FROM (SELECT txid FROM events ORDER BY txid DESC LIMIT 1) e \
         WHERE e.txid >= pg_snapshot_xmax(pg_current_snapshot())",
    )
    .fetch_optional(conn)
    .await
    .map_err(|e| e.to_string())?;
    match ahead {
        None => Ok(()),
        Some((newest, next)) => Err(behind(newest, next)),
    }
}

fn behind(newest: i64, next: i64) -> String {
    let epoch = (newest >> 32) + 1;
    format!(
        "its newest event was written by transaction {newest}, but this PostgreSQL cluster's next transaction id is {next}: \
         the database was restored into a cluster behind the one that wrote it, where new events would sort before old ones. \
         Stop the cluster, run `pg_resetwal --epoch={epoch}` on its data directory, start it, and try again (docs/deployment.md, \"Restoring a backup\")"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_named_puts_every_new_transaction_after_the_log() {
        let line = behind(98_330, 38_344);
        assert!(line.contains("--epoch=1"), "{line}");
        let next_epoch_start = 1_i64 << 32;
        assert!(next_epoch_start > 98_330);
        let line = behind((3_i64 << 32) + 5, 7);
        assert!(line.contains("--epoch=4"), "{line}");
    }
}
