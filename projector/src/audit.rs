//! The audit index: one row per event with its cursor, commit time,
//! aggregate, type, actor, client and subject, so auditors can filter the
//! log without decoding every payload.

use serde_json::Value;
use writ_infra::store::inline::ApplyError;
use writ_infra::store::statement::Statement;
use writ_infra::store::StoredEvent;

/// One multi-row INSERT for a slice of events (a round trip per slice, not
/// per event). Client and subject come from the event where it names them;
/// later grant and session events do not repeat them, so those come from
/// the inline `grants` and `sessions` rows in the same schema (a rebuild
/// reads its own, written before this statement runs).
pub fn rows(schema: &str, events: &[StoredEvent]) -> Result<Option<Statement>, ApplyError> {
    if events.is_empty() {
        return Ok(None);
    }
    let mut values = Vec::with_capacity(events.len());
    let mut statement = Statement::new(String::new());
    for (index, event) in events.iter().enumerate() {
        if !writ_domain::catalog::is_known(
            &event.aggregate_type,
            &event.event_type,
            &event.event_version,
        ) {
            return Err(ApplyError::Unknown {
                aggregate_type: event.aggregate_type.clone(),
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                position: event.position,
            });
        }
        let field = |name: &str| {
            event
                .payload
                .as_object()
                .and_then(|variants| variants.values().next())
                .and_then(|body| body.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (client, subject) = match event.aggregate_type.as_str() {
            "Client" => (Some(event.aggregate_id.clone()), None),
            "Account" | "LoginDay" => (None, field("sub")),
            "Consent" => (field("client_id"), field("sub")),
            "Session" => (None, field("sub")),
            _ => (None, None),
        };
        let n = index * 9;
        values.push(format!(
            "(CAST(${} AS bigint), ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6,
            n + 7,
            n + 8,
            n + 9
        ));
        statement = statement
            .int(event.position)
            .text(event.cursor().to_string())
            .text(event.recorded_at.clone())
            .text(event.aggregate_type.clone())
            .text(event.aggregate_id.clone())
            .text(event.event_type.clone())
            .opt(event.metadata.get("actor").and_then(Value::as_str))
            .opt(client)
            .opt(subject);
    }
    statement.sql = format!(
        "INSERT INTO {schema}.audit_index (position, cursor, recorded_at, aggregate_type, aggregate_id, event_type, actor, client_id, subject)
         SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7,
                coalesce(v.column8, g.client_id), coalesce(v.column9, g.sub, s.sub)
         FROM (VALUES {}) AS v
         LEFT JOIN {schema}.grants g ON v.column4 = 'Grant' AND g.gid = v.column5
         LEFT JOIN {schema}.sessions s ON v.column4 = 'Session' AND s.sid = v.column5",
        values.join(", ")
    );
    Ok(Some(statement))
}
