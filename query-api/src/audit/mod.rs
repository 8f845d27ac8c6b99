//! Answers for auditors, computed from the log itself: which grants a
//! subject held at a moment, the full consent history, one grant's lineage,
//! who could use a scope at a moment, who was told of a security event
//! (Shared Signals), and an export for a SIEM.
//!
//! "At a moment" means what Writ would have answered then: the events
//! committed by that time (their recorded commit time), with expiry judged
//! by the events' own expiry times against that moment, never by the wall
//! clock.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use writ_store::statement::{placeholders, Statement};
use writ_store::Store;
use writ_store::{event_columns, log_order, StoredEvent};

mod grants;
mod lineage;
mod notifications;

pub use grants::{grants, who_can};
pub use lineage::{consents, export, history};
pub use notifications::{notifications_of, notifications_to};

/// Rows with named columns, in order; shown as a table, JSON or CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

impl Report {
    fn new(columns: &[&'static str]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Each row as an object keyed by column.
    pub fn objects(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                Value::Object(
                    self.columns
                        .iter()
                        .zip(row)
                        .map(|(column, value)| ((*column).to_owned(), value.clone()))
                        .collect(),
                )
            })
            .collect()
    }
}

pub type AuditResult<T> = Result<T, sqlx::Error>;

pub(crate) fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn recorded(event: &StoredEvent) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&event.recorded_at)
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The event's fields: payloads are `{"<event type>": {…}}`.
pub(crate) fn fields(event: &StoredEvent) -> &Value {
    &event.payload[event.event_type.as_str()]
}

pub(crate) fn time_field(event: &StoredEvent, name: &str) -> Option<DateTime<Utc>> {
    fields(event)[name]
        .as_str()
        .and_then(|raw| DateTime::parse_from_rfc3339(raw).ok())
        .map(|time| time.with_timezone(&Utc))
}

pub(crate) fn scopes_field(event: &StoredEvent) -> String {
    match &fields(event)["scopes"] {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(text) => text.clone(),
        _ => String::new(),
    }
}

pub(crate) async fn events_of(
    store: &Store,
    aggregate_type: &str,
    ids: &[String],
) -> AuditResult<Vec<StoredEvent>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let dialect = store.dialect();
    let mut statement = Statement::new(format!(
        "SELECT {} FROM events WHERE aggregate_type = $1 AND aggregate_id IN ({}) ORDER BY {}",
        event_columns(dialect),
        placeholders(1, ids.len()),
        log_order(dialect)
    ))
    .text(aggregate_type);
    for id in ids {
        statement = statement.text(id.clone());
    }
    from_rows(store, &statement).await
}

pub(crate) async fn events_of_types(
    store: &Store,
    types: &[&str],
) -> AuditResult<Vec<StoredEvent>> {
    let dialect = store.dialect();
    let mut statement = Statement::new(format!(
        "SELECT {} FROM events WHERE event_type IN ({}) ORDER BY {}",
        event_columns(dialect),
        placeholders(0, types.len()),
        log_order(dialect)
    ));
    for event_type in types {
        statement = statement.text(*event_type);
    }
    from_rows(store, &statement).await
}

pub(crate) async fn from_rows(
    store: &Store,
    statement: &Statement,
) -> AuditResult<Vec<StoredEvent>> {
    store
        .db()
        .fetch_all(statement)
        .await?
        .iter()
        .map(StoredEvent::from_row)
        .collect()
}

/// A subject by `sub`, or by username when one matches (usernames are
/// looked up by their keyed hash, as the log holds them).
pub async fn subject_of(
    store: &Store,
    keys: &writ_infra::keys::KeyRing,
    subject: &str,
) -> AuditResult<String> {
    use writ_infra::personal::{account_id, normalize_username};
    let Ok(normalised) = normalize_username(subject) else {
        return Ok(subject.to_owned());
    };
    let found =
        writ_store::views::accounts::sub_of(store.db(), &account_id(keys, &normalised)).await?;
    Ok(found.unwrap_or_else(|| subject.to_owned()))
}
