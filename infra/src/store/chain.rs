//! The per-stream hash chain: each event's hash covers an RFC 8785
//! canonical form of its stored row and the previous hash of its stream,
//! so an altered or removed event breaks every later link.

use serde_json::{json, Value};

use crate::crypto::sha256_hex;

/// The `previous` of a stream's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

pub fn link(previous: &str, row: &RowForHash<'_>) -> String {
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
    let mut canonical = String::with_capacity(512);
    canonical.push_str(previous);
    canonical.push('\n');
    write_canonical(&object, &mut canonical);
    sha256_hex(canonical.as_bytes())
}

/// RFC 8785 (JCS) for the JSON Writ writes: object members sorted by their
/// UTF-16 code units, no whitespace, strings escaped as ECMAScript does.
/// Events hold no floating-point numbers; integers print the same in JCS
/// and in serde_json.
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
        Value::String(text) => out.push_str(&Value::String(text.clone()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut keys: Vec<&String> = members.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&members[key], out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_sorts_members_by_utf16_and_drops_whitespace() {
        let value: Value = serde_json::from_str(r#"{ "b": [1, {"z": null, "a": true}], "a": "\u00e9\n", "\ud83d\ude00": 1, "\ufb01": 2 }"#)
            .unwrap_or_default();
        let mut out = String::new();
        write_canonical(&value, &mut out);
        assert_eq!(out, "{\"a\":\"\u{e9}\\n\",\"b\":[1,{\"a\":true,\"z\":null}],\"\u{1F600}\":1,\"\u{FB01}\":2}");
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
