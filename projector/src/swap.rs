//! `writ replay --swap`: the read model replaced by a replay of the log
//! while traffic goes on. The rebuild is caught up page by page beside the
//! live tables; then one short transaction shuts out writers, applies the
//! tail and puts the rebuilt tables in the live ones' place. Commands that
//! arrive meanwhile wait for that transaction; none fails.
//!
//! PostgreSQL moves tables between schemas, which costs nothing however
//! large they are. Statements waiting on a live table's lock look its name
//! up again once they get it, so they land in the new table. SQLite cannot
//! move a table between files, so it copies the rebuilt rows in under its
//! write lock.

use std::time::{Duration, Instant};

use writ_store::schema::{read_tables_ddl, REBUILDABLE_TABLES};
use writ_store::statement::Statement;
use writ_store::{Conn, Cursor, Dialect, Target};

use crate::replay::{attach_scratch, detach_scratch, replay, Pass, Progress, Until, PAGE};
use crate::run::try_lock;
use crate::{read_checkpoint, ProjectorError, PROJECTION};

/// Only one swap at a time (session-level advisory lock).
const SWAP_LOCK: i64 = 0x0057_5249_5453_5750; // "WRITSWP"
const REBUILT: &str = "writ_swap";
const RETIRED: &str = "writ_retired";
/// How long the switch waits for any one lock before it lets go of all of
/// them and tries again: a reader holding one table while it waits for
/// another the switch holds would otherwise deadlock with it. Commands
/// queued behind the switch wait at most this long per attempt.
const LOCK_TIMEOUT: &str = "200ms";
const SWITCH_ATTEMPTS: u32 = 50;
/// Catch-up passes before the switch takes the tail under its lock, even
/// if writers keep up with the replay.
const CATCH_UP_PASSES: u32 = 20;

/// What a swap did.
#[derive(Debug, Clone, Copy)]
pub struct Swapped {
    /// Events replayed in all, the tail included.
    pub events: u64,
    /// Events applied under the switch's lock.
    pub tail: u64,
    /// How long writers were shut out.
    pub held: Duration,
    /// Attempts the switch needed to get its locks.
    pub attempts: u32,
}

/// Rebuilds every table of the read model from the log and switches the
/// live read model to the rebuild.
pub async fn replay_and_swap(
    target: &Target,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Swapped, ProjectorError> {
    let mut conn = Conn::connect(target).await?;
    match target {
        Target::Postgres(_) => {
            if !try_lock(&mut conn, SWAP_LOCK).await? {
                return Err(ProjectorError::Invalid(
                    "another writ replay --swap is running on this database".into(),
                ));
            }
            conn.batch(&format!(
                "BEGIN; DROP SCHEMA IF EXISTS {REBUILT} CASCADE; DROP SCHEMA IF EXISTS {RETIRED} CASCADE; \
                 CREATE SCHEMA {REBUILT}; {} COMMIT",
                read_tables_ddl(REBUILT, Dialect::Postgres)
            ))
            .await?;
            let swapped = catch_up_and_switch(&mut conn, target, REBUILT, on_progress).await;
            // Empty after a switch; a failed swap's leftovers.
            let _ = conn
                .batch(&format!(
                    "DROP SCHEMA IF EXISTS {RETIRED} CASCADE; DROP SCHEMA IF EXISTS {REBUILT} CASCADE"
                ))
                .await;
            let _ = conn
                .execute(&[Statement::new("SELECT pg_advisory_unlock($1)").int(SWAP_LOCK)])
                .await;
            swapped
        }
        Target::Sqlite(path) => {
            let scratch = attach_scratch(&mut conn, path, "rebuilt").await?;
            conn.batch(&read_tables_ddl("rebuilt", Dialect::Sqlite))
                .await?;
            let swapped = catch_up_and_switch(&mut conn, target, "rebuilt", on_progress).await;
            detach_scratch(&mut conn, "rebuilt", &scratch).await;
            swapped
        }
    }
}

async fn catch_up_and_switch(
    conn: &mut Conn,
    target: &Target,
    scratch: &str,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Swapped, ProjectorError> {
    let mut pass = Pass::committed(scratch, Until::Head);
    let mut progress = Progress::start(conn).await?;
    // On PostgreSQL the bulk of the log is loaded with COPY; the passes
    // after it go through the statements, as the tail does.
    if conn.dialect() == Dialect::Postgres {
        pass.after =
            crate::bulk::replay(target, scratch, Until::Head, &mut progress, on_progress).await?;
    }
    for _ in 0..CATCH_UP_PASSES {
        let before = progress.replayed;
        pass.after = replay(conn, pass, &mut progress, on_progress).await?;
        if progress.replayed - before < PAGE as u64 {
            break;
        }
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        // A retried attempt counts its tail again from where it began.
        let mut attempt = progress;
        match switch(conn, scratch, pass.after, &mut attempt, on_progress).await {
            Ok(held) => {
                return Ok(Swapped {
                    events: attempt.replayed,
                    tail: attempt.replayed - progress.replayed,
                    held,
                    attempts,
                })
            }
            Err(ProjectorError::Sql(err))
                if lost_a_lock_race(&err) && attempts < SWITCH_ATTEMPTS =>
            {
                let _ = conn.batch("ROLLBACK").await;
                // Let the traffic queued behind the abandoned attempt pass.
                tokio::time::sleep(Duration::from_millis(20 + 10 * u64::from(attempts))).await;
            }
            Err(err) => {
                let _ = conn.batch("ROLLBACK").await;
                return Err(err);
            }
        }
    }
}

/// A lock not granted within the timeout, or a deadlock PostgreSQL broke
/// by choosing the switch: both leave the live tables as they were.
fn lost_a_lock_race(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "55P03" || code == "40P01")
}

/// The switch: writers shut out, the tail applied, the tables exchanged,
/// in one transaction. Returns how long it held writers back.
async fn switch(
    conn: &mut Conn,
    scratch: &str,
    after: Option<Cursor>,
    progress: &mut Progress,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Duration, ProjectorError> {
    let dialect = conn.dialect();
    let live = dialect.live_schema();
    match dialect {
        // The single write lock: the committer's batches wait for it.
        Dialect::Sqlite => conn.batch("BEGIN IMMEDIATE").await?,
        Dialect::Postgres => {
            let tables: Vec<String> = REBUILDABLE_TABLES
                .iter()
                .map(|table| format!("{live}.{table}"))
                .collect();
            // Appenders first: once none is in flight, no transaction holds
            // a read table while it waits to append. The checkpoints too:
            // the projector's must stay where the switch reads it.
            conn.batch(&format!(
                "BEGIN; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; \
                 LOCK TABLE {live}.events, {live}.projector_checkpoints IN EXCLUSIVE MODE; \
                 LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                tables.join(", ")
            ))
            .await?;
        }
    }
    let held = Instant::now();
    // With writers shut out the whole log is visible: no bound needed.
    let tail = Pass {
        bounded: false,
        commit_pages: false,
        after,
        ..Pass::committed(scratch, Until::Head)
    };
    replay(conn, tail, progress, on_progress).await?;
    // The live projector's checkpoint stays: the rebuilt audit index must
    // end where the one it replaces did, or the projector would index the
    // events after it twice.
    let checkpoint = read_checkpoint(conn, PROJECTION).await?;
    conn.execute(&[trim_audit_index(dialect, scratch, checkpoint)])
        .await?;
    let exchange: Vec<String> = match dialect {
        Dialect::Postgres => std::iter::once(format!("CREATE SCHEMA {RETIRED}"))
            .chain(REBUILDABLE_TABLES.iter().flat_map(|table| {
                [
                    format!("ALTER TABLE {live}.{table} SET SCHEMA {RETIRED}"),
                    format!("ALTER TABLE {scratch}.{table} SET SCHEMA {live}"),
                ]
            }))
            .collect(),
        Dialect::Sqlite => REBUILDABLE_TABLES
            .iter()
            .flat_map(|table| {
                [
                    format!("DELETE FROM {live}.{table}"),
                    format!("INSERT INTO {live}.{table} SELECT * FROM {scratch}.{table}"),
                ]
            })
            .collect(),
    };
    conn.batch(&exchange.join(";\n")).await?;
    writ_store::memory::mark_read_tables_rewritten(conn).await?;
    conn.batch("COMMIT").await?;
    Ok(held.elapsed())
}

/// Removes the rebuilt audit rows of events after the checkpoint.
fn trim_audit_index(dialect: Dialect, scratch: &str, checkpoint: Cursor) -> Statement {
    match dialect {
        Dialect::Sqlite => Statement::new(format!(
            "DELETE FROM {scratch}.audit_index WHERE position > $1"
        ))
        .int(checkpoint.position),
        Dialect::Postgres => Statement::new(format!(
            "DELETE FROM {scratch}.audit_index AS a USING events AS e
             WHERE e.position = a.position AND (e.txid, e.position) > ($1::text::xid8, $2)"
        ))
        .text(checkpoint.txid.to_string())
        .int(checkpoint.position),
    }
}
