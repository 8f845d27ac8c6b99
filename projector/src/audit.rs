//! The audit index: one row per event with its cursor, commit time,
//! aggregate, type, actor, client and subject, so auditors can filter the
//! log without decoding every payload.

use serde_json::Value;
use writ_infra::store::inline::ApplyError;
use writ_infra::store::statement::Statement;
use writ_infra::store::StoredEvent;

pub fn statement(schema: &str, event: &StoredEvent) -> Result<Statement, ApplyError> {
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
    let actor = event.metadata.get("actor").and_then(Value::as_str);
    let field = |name: &str| {
        event
            .payload
            .as_object()
            .and_then(|variants| variants.values().next())
            .and_then(|body| body.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let columns = "position, cursor, recorded_at, aggregate_type, aggregate_id, event_type, actor, client_id, subject";
    let row = Statement::new(String::new())
        .int(event.position)
        .text(event.cursor().to_string())
        .text(event.recorded_at.clone())
        .text(event.aggregate_type.clone())
        .text(event.aggregate_id.clone())
        .text(event.event_type.clone())
        .opt(actor);
    let known = |client: Option<String>, subject: Option<String>, sql: String| {
        Statement { sql, ..row.clone() }.opt(client).opt(subject)
    };
    let insert = format!(
        "INSERT INTO {schema}.audit_index ({columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    );
    Ok(match event.aggregate_type.as_str() {
        "Client" => known(Some(event.aggregate_id.clone()), None, insert),
        "Account" | "LoginDay" => known(None, field("sub"), insert),
        "Consent" => known(field("client_id"), field("sub"), insert),
        // Grant events after the first do not repeat client and subject; the
        // grant's inline row in the same schema does (a rebuild reads its own).
        "Grant" => Statement {
            sql: format!(
                "INSERT INTO {schema}.audit_index ({columns})
                 SELECT $1, $2, $3, $4, $5, $6, $7, g.client_id, g.sub
                 FROM (SELECT 1 AS one) AS anchor LEFT JOIN {schema}.grants g ON g.gid = $5"
            ),
            ..row
        },
        // Only a session's start names its person; its row does after that.
        "Session" => Statement {
            sql: format!(
                "INSERT INTO {schema}.audit_index ({columns})
                 SELECT $1, $2, $3, $4, $5, $6, $7, NULL, s.sub
                 FROM (SELECT 1 AS one) AS anchor LEFT JOIN {schema}.sessions s ON s.sid = $5"
            ),
            ..row
        },
        _ => known(None, None, insert),
    })
}
