//! The committer's inserts of a batch's events. SQLite takes the
//! committer's positions; on PostgreSQL the identity column assigns them,
//! in the rows' order, and `RETURNING` reports them back.

use std::collections::HashMap;

use super::chain;
use super::committer::AppendError;
use super::conn::{Conn, Dialect, RowExt};
use super::statement::{self, value_rows, Statement};
use super::StoredEvent;

/// SQLite's prepared statements are cached per SQL text, and a statement
/// for hundreds of rows compiles to megabytes: inserts there take the
/// largest power of two up to this, so eight shapes cover every batch.
const SQLITE_EVENTS_PER_INSERT: usize = 128;

const SQLITE_COLUMNS: &str = "aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at, hash, position";

/// One insert of arrays: a single statement shape, so a single server-side
/// prepare, whatever the batch's size (a `VALUES` list took a shape, and a
/// prepare, per size). `WITH ORDINALITY … ORDER BY` keeps the batch's order
/// for the identity column, which numbers the global order.
const POSTGRES_INSERT: &str = "INSERT INTO events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at, hash) \
     SELECT t, i, s::bigint, et, ev, p::json, m::json, r::timestamptz, h \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) \
     WITH ORDINALITY AS u(t, i, s, et, ev, p, m, r, h, n) ORDER BY n \
     RETURNING aggregate_type, aggregate_id, sequence, position";
/// The arrays [`POSTGRES_INSERT`] takes apart: one per column it inserts.
const POSTGRES_COLUMNS: usize = 9;

/// Writes the events, in order; on PostgreSQL sets each one's position.
pub(crate) async fn insert(
    conn: &mut Conn,
    rows: &mut [(&mut StoredEvent, &chain::Prepared)],
) -> Result<(), AppendError> {
    match conn.dialect() {
        Dialect::Sqlite => {
            let mut rest = rows;
            while !rest.is_empty() {
                let take = statement::power_of_two_rows(rest.len(), SQLITE_EVENTS_PER_INSERT);
                let (chunk, after) = rest.split_at_mut(take);
                run(conn, &sqlite_insert(chunk)).await?;
                rest = after;
            }
            Ok(())
        }
        Dialect::Postgres if rows.is_empty() => Ok(()),
        Dialect::Postgres => {
            let returned = run(conn, &postgres_insert(rows)).await?;
            let positions: HashMap<(String, String, i64), i64> = returned
                .iter()
                .map(|row| {
                    let key = (
                        row.text("aggregate_type").unwrap_or_default(),
                        row.text("aggregate_id").unwrap_or_default(),
                        row.int("sequence").unwrap_or(0),
                    );
                    (key, row.int("position").unwrap_or(0))
                })
                .collect();
            for (event, _) in rows.iter_mut() {
                let key = (
                    event.aggregate_type.clone(),
                    event.aggregate_id.clone(),
                    event.sequence,
                );
                event.position = positions.get(&key).copied().unwrap_or(0);
            }
            Ok(())
        }
    }
}

async fn run(conn: &mut Conn, insert: &Statement) -> Result<Vec<crate::conn::Row>, AppendError> {
    match conn.fetch_all(insert).await {
        Ok(returned) => Ok(returned),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(AppendError::Conflict),
        Err(err) => Err(AppendError::Unavailable(err.to_string())),
    }
}

fn sqlite_insert(rows: &[(&mut StoredEvent, &chain::Prepared)]) -> Statement {
    let sql = format!(
        "INSERT INTO events ({SQLITE_COLUMNS}) VALUES {}",
        value_rows(rows.len(), 10)
    );
    rows.iter()
        .fold(Statement::new(sql), |insert, (event, prepared)| {
            insert
                .text(event.aggregate_type.clone())
                .text(event.aggregate_id.clone())
                .int(event.sequence)
                .text(event.event_type.clone())
                .text(event.event_version.clone())
                .text(prepared.payload.clone())
                .text(prepared.metadata.clone())
                .text(event.recorded_at.clone())
                .text(event.hash.clone())
                .int(event.position)
        })
}

fn postgres_insert(rows: &[(&mut StoredEvent, &chain::Prepared)]) -> Statement {
    let rows = rows
        .iter()
        .map(|(event, prepared)| {
            let row: [String; POSTGRES_COLUMNS] = [
                event.aggregate_type.clone(),
                event.aggregate_id.clone(),
                event.sequence.to_string(),
                event.event_type.clone(),
                event.event_version.clone(),
                prepared.payload.clone(),
                prepared.metadata.clone(),
                event.recorded_at.clone(),
                event.hash.clone(),
            ];
            row.into_iter().map(Some).collect()
        })
        .collect();
    Statement::new(POSTGRES_INSERT).columns(rows, POSTGRES_COLUMNS)
}
