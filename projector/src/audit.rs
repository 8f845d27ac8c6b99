//! The audit index: one row per event with its cursor, commit time,
//! aggregate, type, actor, client and subject, so auditors can filter the
//! log without decoding every payload.

use serde_json::Value;
use sqlx::SqliteConnection;
use writ_infra::store::inline::ApplyError;
use writ_infra::store::StoredEvent;

pub async fn apply(
    conn: &mut SqliteConnection,
    schema: &str,
    event: &StoredEvent,
) -> Result<(), ApplyError> {
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
    let (client_id, subject) = facts(conn, schema, event).await?;
    let actor = event.metadata.get("actor").and_then(Value::as_str);
    let sql = format!(
        "INSERT INTO {schema}.audit_index (position, cursor, recorded_at, aggregate_type, aggregate_id, event_type, actor, client_id, subject)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    sqlx::query(&sql)
        .bind(event.position)
        .bind(event.cursor().to_string())
        .bind(&event.recorded_at)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(&event.event_type)
        .bind(actor)
        .bind(client_id)
        .bind(subject)
        .execute(conn)
        .await?;
    Ok(())
}

/// The client and subject an event concerns. Grant events after the first
/// do not repeat them; the grant's inline row (same schema, so a rebuild
/// reads its own) does.
async fn facts(
    conn: &mut SqliteConnection,
    schema: &str,
    event: &StoredEvent,
) -> Result<(Option<String>, Option<String>), ApplyError> {
    let field = |name: &str| {
        event
            .payload
            .as_object()
            .and_then(|variants| variants.values().next())
            .and_then(|body| body.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(match event.aggregate_type.as_str() {
        "Client" => (Some(event.aggregate_id.clone()), None),
        "Account" | "LoginDay" => (None, field("sub")),
        "Consent" => (field("client_id"), field("sub")),
        "Grant" => {
            let sql = format!("SELECT client_id, sub FROM {schema}.grants WHERE gid = ?");
            sqlx::query_as::<_, (String, Option<String>)>(&sql)
                .bind(&event.aggregate_id)
                .fetch_optional(conn)
                .await?
                .map(|(client, sub)| (Some(client), sub))
                .unwrap_or((None, None))
        }
        _ => (None, None),
    })
}
