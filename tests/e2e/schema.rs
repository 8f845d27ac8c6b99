//! Checks a message against `docs/revocation-event.schema.json`: the
//! keywords that schema uses (type, required, additionalProperties, enum,
//! const, items, format date-time; the cursor pattern is checked by
//! parsing the cursor). A keyword the schema gains and this does not know
//! fails the check, so the two cannot drift apart silently.

use serde_json::Value;

const SCHEMA: &str = include_str!("../../docs/revocation-event.schema.json");
const KNOWN: &[&str] = &[
    "type",
    "enum",
    "const",
    "items",
    "format",
    "pattern",
    "description",
];

pub fn assert_valid(message: &Value) {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap_or_else(|e| panic!("{e}"));
    let object = message
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {message}"));
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        assert!(object.contains_key(name), "{name} missing from {message}");
    }
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, value) in object {
        let property = properties
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the schema (additionalProperties: false)"));
        check(name, property, value);
    }
}

fn check(name: &str, property: &Value, value: &Value) {
    for keyword in property.as_object().into_iter().flatten().map(|(k, _)| k) {
        assert!(
            KNOWN.contains(&keyword.as_str()),
            "unknown keyword {keyword}"
        );
    }
    let types: Vec<&str> = match &property["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let matches = |kind: &str| match kind {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        "object" => value.is_object(),
        _ => false,
    };
    assert!(
        types.iter().any(|kind| matches(kind)),
        "{name}: {value} is not {types:?}"
    );
    if let Some(allowed) = property["enum"].as_array() {
        assert!(
            allowed.contains(value),
            "{name}: {value} not in {allowed:?}"
        );
    }
    if let Some(constant) = property.get("const") {
        assert_eq!(value, constant, "{name}");
    }
    if let (Some(items), Some(values)) = (property.get("items"), value.as_array()) {
        for item in values {
            check(name, items, item);
        }
    }
    if property["format"] == "date-time" {
        let text = value.as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            "{name}: {text} is not RFC 3339"
        );
    }
    if property.get("pattern").is_some() {
        let text = value.as_str().unwrap_or_default();
        assert!(
            text.parse::<writ_store::Cursor>().is_ok(),
            "{name}: {text} is not a cursor"
        );
    }
}
