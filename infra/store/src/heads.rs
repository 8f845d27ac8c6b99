//! The heads of the streams a batch touches, read inside its transaction,
//! and on PostgreSQL the per-stream locks taken before reading them.

use std::collections::{HashMap, HashSet};

use super::committer::AppendRequest;
use super::conn::{Conn, Dialect, RowExt};
use super::statement::{placeholders, Statement};

/// Two parameters per stream in the head lookup.
const STREAMS_PER_LOOKUP: usize = 1000;

pub(crate) type StreamKey = (String, String);

/// The last sequence and hash of every stream the batch touches.
pub(crate) async fn stream_heads(
    conn: &mut Conn,
    batch: &[AppendRequest],
) -> Result<HashMap<StreamKey, (i64, String)>, sqlx::Error> {
    let keys: HashSet<StreamKey> = batch
        .iter()
        .filter_map(|r| r.events.first())
        .map(|e| (e.aggregate_type.clone(), e.aggregate_id.clone()))
        .collect();
    let mut heads = HashMap::with_capacity(keys.len());
    let keys: Vec<StreamKey> = keys.into_iter().collect();
    if conn.dialect() == Dialect::Postgres {
        lock_streams(conn, &keys).await?;
    }
    // On SQLite a lookup is a call, not a round trip: one stream each keeps
    // a single statement shape in the cache (see SQLITE_EVENTS_PER_INSERT).
    let per_lookup = match conn.dialect() {
        Dialect::Postgres => STREAMS_PER_LOOKUP,
        Dialect::Sqlite => 1,
    };
    for chunk in keys.chunks(per_lookup) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", placeholders(i * 2, 2)))
            .collect();
        let mut lookup = Statement::new(format!(
            "WITH wanted(t, i) AS (VALUES {}) \
             SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.hash FROM wanted \
             JOIN events e ON e.aggregate_type = wanted.t AND e.aggregate_id = wanted.i \
             AND e.sequence = (SELECT max(m.sequence) FROM events m WHERE m.aggregate_type = wanted.t AND m.aggregate_id = wanted.i)",
            values.join(", ")
        ));
        for (aggregate_type, aggregate_id) in chunk {
            lookup = lookup
                .text(aggregate_type.clone())
                .text(aggregate_id.clone());
        }
        for row in conn.fetch_all(&lookup).await? {
            let key = (
                row.text("aggregate_type").unwrap_or_default(),
                row.text("aggregate_id").unwrap_or_default(),
            );
            heads.insert(
                key,
                (
                    row.int("sequence").unwrap_or(0),
                    row.text("hash").unwrap_or_default(),
                ),
            );
        }
    }
    Ok(heads)
}

/// PostgreSQL has many writers: each batch takes a transaction-scoped
/// advisory lock per stream it touches, in one global order so batches
/// cannot deadlock. A batch then reads heads only after any rival batch on
/// its streams has committed, instead of losing at insert time and re-running.
/// (SQLite's single write lock already gives this.)
async fn lock_streams(conn: &mut Conn, keys: &[StreamKey]) -> Result<(), sqlx::Error> {
    let mut locks: Vec<i64> = keys.iter().map(|(t, i)| stream_lock_key(t, i)).collect();
    locks.sort_unstable();
    locks.dedup();
    for chunk in locks.chunks(STREAMS_PER_LOOKUP) {
        // The sorted subquery feeds the lock calls in key order.
        let values: Vec<String> = (1..=chunk.len())
            .map(|n| format!("(${n}::bigint)"))
            .collect();
        let mut lock = Statement::new(format!(
            "SELECT pg_advisory_xact_lock(k) FROM (SELECT k FROM (VALUES {}) AS v(k) ORDER BY k) AS ordered",
            values.join(", ")
        ));
        for key in chunk {
            lock = lock.int(*key);
        }
        conn.execute(&[lock]).await?;
    }
    Ok(())
}

/// 64 bits of SHA-256 over the stream's identity. A collision only makes
/// two streams share a lock.
fn stream_lock_key(aggregate_type: &str, aggregate_id: &str) -> i64 {
    let digest = crate::chain::sha256_hex(format!("{aggregate_type}\n{aggregate_id}").as_bytes());
    i64::from_str_radix(&digest[..15], 16).unwrap_or(0)
}
