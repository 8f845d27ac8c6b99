//! The per-stream hash chain: each event's hash covers an RFC 8785
//! canonical form of its stored row and the previous hash of its stream,
//! so an altered or removed event breaks every later link.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::conn::Db;
use super::statement::Statement;
use super::{event_columns, StoredEvent};

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A stream whose stored hashes do not match a recomputation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub position: i64,
}

/// The `previous` of a stream's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const VERIFY_PAGE: i64 = 5_000;

/// Recomputes every stream's chain from its stored rows; returns the first
/// broken link of each broken stream (empty means intact) and how many
/// events were checked. Reads in keyset pages, so memory stays flat.
pub async fn verify_chains(db: &Db) -> Result<(Vec<ChainBreak>, u64), sqlx::Error> {
    let columns = event_columns(db.dialect());
    let (mut breaks, mut checked) = (Vec::new(), 0_u64);
    let mut stream: Option<(String, String, String, bool)> = None;
    let mut after = (String::new(), String::new(), -1_i64);
    loop {
        let page = Statement::new(format!(
            "SELECT {columns} FROM events WHERE (aggregate_type, aggregate_id, sequence) > ($1, $2, $3) \
             ORDER BY aggregate_type, aggregate_id, sequence LIMIT $4"
        ))
        .text(after.0.clone())
        .text(after.1.clone())
        .int(after.2)
        .int(VERIFY_PAGE);
        let rows = db.fetch_all(&page).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let event = StoredEvent::from_owned_row(row)?;
            checked += 1;
            let same_stream = stream.as_ref().is_some_and(|(t, id, _, _)| {
                *t == event.aggregate_type && *id == event.aggregate_id
            });
            if !same_stream {
                stream = Some((
                    event.aggregate_type.clone(),
                    event.aggregate_id.clone(),
                    GENESIS.to_owned(),
                    false,
                ));
            }
            let Some((_, _, previous, broken)) = stream.as_mut() else {
                continue;
            };
            let expected = link(previous, &RowForHash::of(&event));
            if expected != event.hash && !*broken {
                *broken = true;
                breaks.push(ChainBreak {
                    aggregate_type: event.aggregate_type.clone(),
                    aggregate_id: event.aggregate_id.clone(),
                    sequence: event.sequence,
                    position: event.position,
                });
            }
            // Continue from the stored hash: one altered row is reported
            // once, not as a cascade over the rest of its stream.
            *previous = event.hash.clone();
            after = (event.aggregate_type, event.aggregate_id, event.sequence);
        }
    }
    Ok((breaks, checked))
}

#[derive(serde::Serialize)]
pub struct RowForHash<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub payload: &'a Value,
    pub metadata: &'a Value,
    pub recorded_at: &'a str,
}

impl<'a> RowForHash<'a> {
    /// What a stored event's hash covers.
    pub fn of(event: &'a StoredEvent) -> Self {
        Self {
            aggregate_type: &event.aggregate_type,
            aggregate_id: &event.aggregate_id,
            sequence: event.sequence,
            event_type: &event.event_type,
            event_version: &event.event_version,
            payload: &event.payload,
            metadata: &event.metadata,
            recorded_at: &event.recorded_at,
        }
    }
}

/// The previous hash, a newline and the row in RFC 8785 canonical form
/// (`serde_json_canonicalizer`: members sorted by their UTF-16 code units,
/// no whitespace, strings and numbers as ECMAScript prints them), hashed.
pub fn link(previous: &str, row: &RowForHash<'_>) -> String {
    let mut canonical = Vec::with_capacity(512);
    canonical.extend_from_slice(previous.as_bytes());
    canonical.push(b'\n');
    // Serialising borrowed fields cannot fail: every key is a string.
    let _ = serde_json_canonicalizer::to_writer(row, &mut canonical);
    sha256_hex(&canonical)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_form_sorts_members_by_utf16_and_drops_whitespace() {
        let value: Value = serde_json::from_str(r#"{ "b": [1, {"z": null, "a": true}], "a": "\u00e9\n", "\ud83d\ude00": 1, "\ufb01": 2 }"#)
            .unwrap_or_default();
        let out = serde_json_canonicalizer::to_string(&value).unwrap_or_default();
        assert_eq!(out, "{\"a\":\"\u{e9}\\n\",\"b\":[1,{\"a\":true,\"z\":null}],\"\u{1F600}\":1,\"\u{FB01}\":2}");
    }

    /// The link as first written: the row built as a `Value`, then put in
    /// canonical form. Stored hashes were made this way and must still
    /// verify (the upgrade fixture's, made by Writ's own canonicaliser,
    /// verify in `e2e upgrade`).
    fn link_through_a_value(previous: &str, row: &RowForHash<'_>) -> String {
        let object = json!({
            "aggregate_type": row.aggregate_type,
            "aggregate_id": row.aggregate_id,
            "sequence": row.sequence,
            "event_type": row.event_type,
            "event_version": row.event_version,
            "payload": row.payload,
            "metadata": row.metadata,
            "recorded_at": row.recorded_at,
        });
        let canonical = serde_json_canonicalizer::to_string(&object).unwrap_or_default();
        sha256_hex(format!("{previous}\n{canonical}").as_bytes())
    }

    #[test]
    fn the_link_written_member_by_member_equals_the_one_through_a_value() {
        let payload =
            json!({"Z": [1, "\u{1F600}\"\\\n\u{1}"], "a": {"\u{fb01}": null, "b": true}, "n": -12});
        let metadata = json!({"actor": "client:x", "request_id": "r\t1"});
        for (aggregate_id, sequence) in [("id \"quoted\"", 0), ("é/\u{7f}", 41), ("", i64::MAX)] {
            let row = RowForHash {
                aggregate_type: "Grant",
                aggregate_id,
                sequence,
                event_type: "AccessTokenIssued",
                event_version: "1.0",
                payload: &payload,
                metadata: &metadata,
                recorded_at: "2026-12-02T10:00:00.123456Z",
            };
            assert_eq!(link(GENESIS, &row), link_through_a_value(GENESIS, &row));
        }
    }

    #[test]
    fn a_changed_payload_changes_the_link() {
        let payload = json!({"x": 1});
        let other = json!({"x": 2});
        let meta = json!({});
        let row = |payload| RowForHash {
            aggregate_type: "A",
            aggregate_id: "1",
            sequence: 1,
            event_type: "E",
            event_version: "1.0",
            payload,
            metadata: &meta,
            recorded_at: "t",
        };
        assert_ne!(link(GENESIS, &row(&payload)), link(GENESIS, &row(&other)));
        assert_ne!(
            link(GENESIS, &row(&payload)),
            link(&"1".repeat(64), &row(&payload))
        );
    }
}
