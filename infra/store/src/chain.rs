//! The per-stream hash chain: each event's hash covers an RFC 8785
//! canonical form of its stored row and the previous hash of its stream,
//! so an altered or removed event breaks every later link.

use cqrs_es::persist::SerializedEvent;
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

pub fn link(previous: &str, row: &RowForHash<'_>) -> String {
    link_body(previous, &body(row), row.recorded_at, row.sequence)
}

/// The hashed form of a row up to its commit time: the canonical object's
/// members before `recorded_at` (`sequence` follows it), unclosed. Keys are
/// ASCII, so their UTF-16 order is the order here. Written member by member:
/// building a `Value` first would copy the payload on every append.
fn body(row: &RowForHash<'_>) -> Vec<u8> {
    let members = [
        ("aggregate_id", Member::Text(row.aggregate_id)),
        ("aggregate_type", Member::Text(row.aggregate_type)),
        ("event_type", Member::Text(row.event_type)),
        ("event_version", Member::Text(row.event_version)),
        ("metadata", Member::Json(row.metadata)),
        ("payload", Member::Json(row.payload)),
    ];
    let mut canonical = Vec::with_capacity(512);
    for (index, (key, value)) in members.into_iter().enumerate() {
        canonical.push(if index == 0 { b'{' } else { b',' });
        write_string(key, &mut canonical);
        canonical.push(b':');
        match value {
            Member::Text(text) => write_string(text, &mut canonical),
            Member::Json(value) => write_canonical(value, &mut canonical),
        }
    }
    canonical
}

/// `previous`, a newline, then the row's canonical object: the body and the
/// two members only the committing batch knows.
fn link_body(previous: &str, body: &[u8], recorded_at: &str, sequence: i64) -> String {
    let mut tail = Vec::with_capacity(64);
    tail.extend_from_slice(b",\"recorded_at\":");
    write_string(recorded_at, &mut tail);
    tail.extend_from_slice(b",\"sequence\":");
    tail.extend_from_slice(sequence.to_string().as_bytes());
    tail.push(b'}');
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hasher.update(&tail);
    hex::encode(hasher.finalize())
}

/// What an event's append needs that does not depend on its batch: its
/// hashed form up to the commit time and its stored JSON texts. Made by
/// the appending task, so the one committer only links and inserts.
#[derive(Debug, Clone)]
pub struct Prepared {
    body: Vec<u8>,
    pub payload: String,
    pub metadata: String,
}

impl Prepared {
    pub fn of(event: &SerializedEvent) -> Self {
        let row = RowForHash {
            aggregate_type: &event.aggregate_type,
            aggregate_id: &event.aggregate_id,
            sequence: event.sequence as i64,
            event_type: &event.event_type,
            event_version: &event.event_version,
            payload: &event.payload,
            metadata: &event.metadata,
            recorded_at: "",
        };
        Self {
            body: body(&row),
            // What `Value`'s `Display` writes, without the formatter in
            // between; serialising a `Value` cannot fail.
            payload: serde_json::to_string(&event.payload).unwrap_or_default(),
            metadata: serde_json::to_string(&event.metadata).unwrap_or_default(),
        }
    }

    /// The same hash as [`link`] over the stored row.
    pub fn link(&self, previous: &str, recorded_at: &str, sequence: i64) -> String {
        link_body(previous, &self.body, recorded_at, sequence)
    }
}

enum Member<'a> {
    Text(&'a str),
    Json(&'a Value),
}

/// A JSON string: serde_json escapes exactly what ECMAScript's
/// `JSON.stringify` does, as RFC 8785 asks. Written straight into the
/// buffer: going through a `Value` and `Display` copied every key and
/// string twice and was most of the appending task's preparation (about
/// 6 % of a request thread's time under issuance). Serialising a string or
/// a number into memory cannot fail.
fn write_string(text: &str, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(out, text);
}

/// RFC 8785 (JCS) for the JSON Writ writes: object members sorted by their
/// UTF-16 code units, no whitespace, strings escaped as ECMAScript does.
/// Events hold no floating-point numbers; integers print the same in JCS
/// and in serde_json.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            let _ = serde_json::to_writer(&mut *out, value);
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut keys: Vec<&String> = members.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_canonical(&members[key], out);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_form_sorts_members_by_utf16_and_drops_whitespace() {
        let value: Value = serde_json::from_str(r#"{ "b": [1, {"z": null, "a": true}], "a": "\u00e9\n", "\ud83d\ude00": 1, "\ufb01": 2 }"#)
            .unwrap_or_default();
        let mut out = Vec::new();
        write_canonical(&value, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), "{\"a\":\"\u{e9}\\n\",\"b\":[1,{\"a\":true,\"z\":null}],\"\u{1F600}\":1,\"\u{FB01}\":2}");
    }

    /// The link as first written: the row built as a `Value`, then put in
    /// canonical form. Stored hashes were made this way and must still
    /// verify.
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
        let mut canonical = format!("{previous}\n").into_bytes();
        write_canonical(&object, &mut canonical);
        sha256_hex(&canonical)
    }

    /// Every stored hash was made with strings escaped and texts written
    /// through `Value`'s `Display`; writing into the buffer directly must
    /// give the same bytes.
    #[test]
    fn strings_and_texts_are_written_as_value_display_wrote_them() {
        let mut texts: Vec<String> = (0_u8..0x80).map(|b| char::from(b).to_string()).collect();
        texts.extend([
            "é\u{2028}\u{2029}\u{fffd}\u{1F600}".to_owned(),
            String::new(),
        ]);
        for text in texts {
            let mut out = Vec::new();
            write_string(&text, &mut out);
            assert_eq!(out, Value::from(text.as_str()).to_string().into_bytes());
        }
        let payload =
            json!({"a": [1, -2, 9_007_199_254_740_993_u64, null, true], "é": {"\u{1}": "x\ny"}});
        let event = SerializedEvent {
            aggregate_id: "g".into(),
            sequence: 1,
            aggregate_type: "Grant".into(),
            event_type: "AccessTokenIssued".into(),
            event_version: "1.0".into(),
            payload: payload.clone(),
            metadata: json!({}),
        };
        assert_eq!(Prepared::of(&event).payload, payload.to_string());
    }

    /// One link pinned as a constant, computed apart from this code
    /// (Python's `json.dumps` with sorted keys, no whitespace and no ASCII
    /// escaping, then SHA-256 over the genesis, a newline and that text):
    /// a change to the canonical form that every path here shared would
    /// still be caught.
    #[test]
    fn a_link_equals_the_one_computed_elsewhere() {
        let payload =
            json!({"Z": [1, "\u{1F600}\"\\\n\u{1}"], "a": {"\u{fb01}": null, "b": true}, "n": -12});
        let metadata = json!({"actor": "client:x", "request_id": "r\t1"});
        let row = RowForHash {
            aggregate_type: "Grant",
            aggregate_id: "id \"quoted\"",
            sequence: 0,
            event_type: "AccessTokenIssued",
            event_version: "1.0",
            payload: &payload,
            metadata: &metadata,
            recorded_at: "2026-12-02T10:00:00.123456Z",
        };
        assert_eq!(
            link(GENESIS, &row),
            "949093812a509af4f2b005ae7d7e54d6d10f2dd85a456c8c14bd8f5935b6814f"
        );
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
            // The committer links what the appending task prepared.
            let event = SerializedEvent {
                aggregate_id: aggregate_id.into(),
                sequence: sequence as usize,
                aggregate_type: "Grant".into(),
                event_type: "AccessTokenIssued".into(),
                event_version: "1.0".into(),
                payload: payload.clone(),
                metadata: metadata.clone(),
            };
            assert_eq!(
                Prepared::of(&event).link(GENESIS, row.recorded_at, sequence),
                link(GENESIS, &row)
            );
        }
    }

    /// Integers are written exactly, as every stored hash was made: RFC
    /// 8785 would print them as doubles, and a library that does (ADR 0024)
    /// changes the hash of a row holding one beyond 2^53 and gives the same
    /// hash to neighbours one double apart.
    #[test]
    fn integers_beyond_two_to_the_fifty_third_stay_exact() {
        let mut out = Vec::new();
        write_canonical(
            &json!({"ttl": 9_007_199_254_740_993_u64, "max": i64::MAX, "neg": -12}),
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"max\":9223372036854775807,\"neg\":-12,\"ttl\":9007199254740993}"
        );
        let payload = json!({"ttl": 9_007_199_254_740_993_u64});
        let neighbour = json!({"ttl": 9_007_199_254_740_992_u64});
        let metadata = json!({});
        let row = |payload| RowForHash {
            aggregate_type: "Client",
            aggregate_id: "c",
            sequence: i64::MAX,
            event_type: "ClientRegistered",
            event_version: "1.0",
            payload,
            metadata: &metadata,
            recorded_at: "t",
        };
        assert_ne!(
            link(GENESIS, &row(&payload)),
            link(GENESIS, &row(&neighbour))
        );
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
