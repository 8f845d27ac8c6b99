//! Answers for auditors, computed from the log itself: which grants a
//! subject held at a moment, the full consent history, one grant's lineage,
//! who could use a scope at a moment, and an export for a SIEM.
//!
//! "At a moment" means what Writ would have answered then: the events
//! committed by that time (their recorded commit time), with expiry judged
//! by the events' own expiry times against that moment, never by the wall
//! clock.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use writ_infra::store::statement::{placeholders, Statement};
use writ_infra::store::{event_columns, log_order, Dialect, RowExt, StoredEvent};
use writ_infra::Store;

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

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn recorded(event: &StoredEvent) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&event.recorded_at)
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The event's fields: payloads are `{"<event type>": {…}}`.
fn fields(event: &StoredEvent) -> &Value {
    &event.payload[event.event_type.as_str()]
}

fn time_field(event: &StoredEvent, name: &str) -> Option<DateTime<Utc>> {
    fields(event)[name]
        .as_str()
        .and_then(|raw| DateTime::parse_from_rfc3339(raw).ok())
        .map(|time| time.with_timezone(&Utc))
}

fn scopes_field(event: &StoredEvent) -> String {
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

async fn events_of(
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

async fn events_of_types(store: &Store, types: &[&str]) -> AuditResult<Vec<StoredEvent>> {
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

async fn from_rows(store: &Store, statement: &Statement) -> AuditResult<Vec<StoredEvent>> {
    store
        .db()
        .fetch_all(statement)
        .await?
        .iter()
        .map(StoredEvent::from_row)
        .collect()
}

async fn texts(store: &Store, statement: &Statement, column: &str) -> AuditResult<Vec<String>> {
    Ok(store
        .db()
        .fetch_all(statement)
        .await?
        .iter()
        .filter_map(|row| row.text(column))
        .collect())
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
    let found = texts(
        store,
        &Statement::new("SELECT sub FROM usernames WHERE account_id = $1")
            .text(account_id(keys, &normalised)),
        "sub",
    )
    .await?;
    Ok(found
        .into_iter()
        .next()
        .unwrap_or_else(|| subject.to_owned()))
}

/// One grant as it stood at a moment.
#[derive(Debug, Clone)]
struct GrantState {
    gid: String,
    kind: String,
    client_id: String,
    sub: Option<String>,
    scopes: String,
    started_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    /// When it stopped working, and why.
    ended: Option<(DateTime<Utc>, String)>,
}

impl GrantState {
    fn status(&self, at: DateTime<Utc>) -> &'static str {
        if self.ended.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|expiry| expiry <= at) {
            "expired"
        } else if self.kind == "code issued" {
            "code issued"
        } else {
            "active"
        }
    }

    fn end(&mut self, at: DateTime<Utc>, why: String) {
        if self.ended.as_ref().is_none_or(|(when, _)| at < *when) {
            self.ended = Some((at, why));
        }
    }
}

/// Folds one grant's events committed by `at`; `None` if none was.
fn fold_grant(gid: &str, events: &[StoredEvent], at: DateTime<Utc>) -> Option<GrantState> {
    let mut state: Option<GrantState> = None;
    let mut refresh_family: Option<DateTime<Utc>> = None;
    let mut refresh_idle: Option<DateTime<Utc>> = None;
    let mut access: Option<DateTime<Utc>> = None;
    for event in events.iter().filter(|event| recorded(event) <= at) {
        let body = fields(event);
        let text = |name: &str| body[name].as_str().map(str::to_owned);
        match event.event_type.as_str() {
            "CodeIssued" | "GrantStarted" => {
                let started = state.as_ref().map_or(recorded(event), |s| s.started_at);
                state = Some(GrantState {
                    gid: gid.to_owned(),
                    kind: if event.event_type == "CodeIssued" {
                        "code issued".to_owned()
                    } else {
                        text("kind").unwrap_or_default()
                    },
                    client_id: text("client_id").unwrap_or_default(),
                    sub: text("sub"),
                    scopes: scopes_field(event),
                    started_at: started,
                    expires_at: time_field(event, "expires_at"),
                    ended: None,
                });
            }
            // A code grant starts working when its code is redeemed.
            "CodeRedeemed" => {
                if let Some(state) = state.as_mut() {
                    state.kind = "authorization_code".to_owned();
                    state.expires_at = None;
                }
            }
            "AccessTokenIssued" => access = access.max(time_field(event, "expires_at")),
            "RefreshTokenIssued" => {
                refresh_family = time_field(event, "family_expires_at");
                refresh_idle = time_field(event, "idle_expires_at");
            }
            "RefreshTokenRotated" => refresh_idle = time_field(event, "idle_expires_at"),
            "CodeBurned" | "CodeReplayDetected" | "RefreshTokenReuseDetected" | "GrantRevoked" => {
                let why = text("reason").unwrap_or_else(|| event.event_type.clone());
                if let Some(state) = state.as_mut() {
                    state.end(recorded(event), why);
                }
            }
            _ => {}
        }
    }
    let mut state = state?;
    if state.kind != "code issued" {
        let refresh = match (refresh_family, refresh_idle) {
            (Some(family), Some(idle)) => Some(family.min(idle)),
            (family, idle) => family.or(idle),
        };
        state.expires_at = access.max(refresh);
    }
    Some(state)
}

/// What stops every grant of a client or a subject, or of one consent:
/// disables and withdrawals, keyed by client, by subject, by (subject,
/// client), each with its commit time.
struct Stoppers {
    clients: HashMap<String, DateTime<Utc>>,
    subjects: HashMap<String, DateTime<Utc>>,
    consents: Vec<(String, String, DateTime<Utc>)>,
}

async fn stoppers(store: &Store, at: DateTime<Utc>) -> AuditResult<Stoppers> {
    let events = events_of_types(
        store,
        &["ClientDisabled", "AccountDisabled", "ConsentWithdrawn"],
    )
    .await?;
    let mut stoppers = Stoppers {
        clients: HashMap::new(),
        subjects: HashMap::new(),
        consents: Vec::new(),
    };
    for event in events.iter().filter(|event| recorded(event) <= at) {
        let when = recorded(event);
        let body = fields(event);
        match event.event_type.as_str() {
            "ClientDisabled" => {
                stoppers
                    .clients
                    .entry(event.aggregate_id.clone())
                    .or_insert(when);
            }
            "AccountDisabled" => {
                if let Some(sub) = body["sub"].as_str() {
                    stoppers.subjects.entry(sub.to_owned()).or_insert(when);
                }
            }
            _ => {
                if let (Some(sub), Some(client)) =
                    (body["sub"].as_str(), body["client_id"].as_str())
                {
                    stoppers
                        .consents
                        .push((sub.to_owned(), client.to_owned(), when));
                }
            }
        }
    }
    Ok(stoppers)
}

/// The grants among `gids` as they stood at `at`, oldest first.
async fn grants_at(
    store: &Store,
    gids: &[String],
    at: DateTime<Utc>,
) -> AuditResult<Vec<GrantState>> {
    let stoppers = stoppers(store, at).await?;
    let mut by_grant: HashMap<String, Vec<StoredEvent>> = HashMap::new();
    for chunk in gids.chunks(500) {
        for event in events_of(store, "Grant", chunk).await? {
            by_grant
                .entry(event.aggregate_id.clone())
                .or_default()
                .push(event);
        }
    }
    let mut grants: Vec<GrantState> = by_grant
        .iter()
        .filter_map(|(gid, events)| fold_grant(gid, events, at))
        .collect();
    for grant in &mut grants {
        if let Some(when) = stoppers.clients.get(&grant.client_id) {
            grant.end(*when, "client disabled".into());
        }
        if let Some(when) = grant
            .sub
            .as_ref()
            .and_then(|sub| stoppers.subjects.get(sub))
        {
            grant.end(*when, "account disabled".into());
        }
        for (sub, client, when) in &stoppers.consents {
            if grant.sub.as_deref() == Some(sub.as_str())
                && *client == grant.client_id
                && *when >= grant.started_at
            {
                grant.end(*when, "consent withdrawn".into());
            }
        }
    }
    grants.sort_by(|a, b| (a.started_at, &a.gid).cmp(&(b.started_at, &b.gid)));
    Ok(grants)
}

/// `audit grants`: the grants a subject held (with a client, optionally),
/// as they stood at `at`.
pub async fn grants(
    store: &Store,
    sub: &str,
    client: Option<&str>,
    at: DateTime<Utc>,
) -> AuditResult<Report> {
    let mut statement = Statement::new(format!(
        "SELECT gid FROM grants WHERE sub = $1{}",
        if client.is_some() {
            " AND client_id = $2"
        } else {
            ""
        }
    ))
    .text(sub);
    if let Some(client) = client {
        statement = statement.text(client);
    }
    let gids: Vec<String> = texts(store, &statement, "gid").await?;
    let mut report = Report::new(&[
        "gid",
        "client_id",
        "kind",
        "scopes",
        "started_at",
        "expires_at",
        "status",
        "ended_at",
        "reason",
    ]);
    for grant in grants_at(store, &gids, at).await? {
        let status = grant.status(at);
        report.rows.push(vec![
            json!(grant.gid),
            json!(grant.client_id),
            json!(grant.kind),
            json!(grant.scopes),
            json!(rfc3339(grant.started_at)),
            json!(grant.expires_at.map(rfc3339)),
            json!(status),
            json!(grant.ended.as_ref().map(|(when, _)| rfc3339(*when))),
            json!(grant.ended.map(|(_, why)| why)),
        ]);
    }
    Ok(report)
}

/// `audit who-can`: the subjects and clients holding an active grant with
/// `scope` at `at`.
pub async fn who_can(
    store: &Store,
    scope: &str,
    client: Option<&str>,
    at: DateTime<Utc>,
) -> AuditResult<Report> {
    let contains = match store.dialect() {
        Dialect::Postgres => "position($1 in ' ' || scopes || ' ') > 0",
        Dialect::Sqlite => "instr(' ' || scopes || ' ', $1) > 0",
    };
    let mut statement = Statement::new(format!(
        "SELECT gid FROM grants WHERE {contains}{}",
        if client.is_some() {
            " AND client_id = $2"
        } else {
            ""
        }
    ))
    .text(format!(" {scope} "));
    if let Some(client) = client {
        statement = statement.text(client);
    }
    let gids: Vec<String> = texts(store, &statement, "gid").await?;
    let mut report = Report::new(&[
        "sub",
        "client_id",
        "gid",
        "scopes",
        "started_at",
        "expires_at",
    ]);
    for grant in grants_at(store, &gids, at).await? {
        let has_scope = grant.scopes.split(' ').any(|s| s == scope);
        if has_scope && grant.status(at) == "active" {
            report.rows.push(vec![
                json!(grant.sub),
                json!(grant.client_id),
                json!(grant.gid),
                json!(grant.scopes),
                json!(rfc3339(grant.started_at)),
                json!(grant.expires_at.map(rfc3339)),
            ]);
        }
    }
    Ok(report)
}

/// `audit consents`: every consent event of a subject, in log order.
pub async fn consents(store: &Store, sub: &str) -> AuditResult<Report> {
    let clients = texts(
        store,
        &Statement::new("SELECT client_id FROM consents WHERE sub = $1").text(sub),
        "client_id",
    )
    .await?;
    let streams: Vec<String> = clients
        .iter()
        .map(|client| writ_domain::consent::stream_id(sub, client))
        .collect();
    let mut report = Report::new(&[
        "cursor",
        "recorded_at",
        "client_id",
        "event",
        "scopes",
        "by",
        "reason",
        "request_id",
    ]);
    let mut events = events_of(store, "Consent", &streams).await?;
    events.sort_by_key(StoredEvent::cursor);
    for event in events {
        let body = fields(&event);
        let by = body["by"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| event.metadata["actor"].as_str().map(str::to_owned));
        report.rows.push(vec![
            json!(event.cursor().to_string()),
            json!(event.recorded_at),
            body["client_id"].clone(),
            json!(event.event_type),
            json!(scopes_field(&event)),
            json!(by),
            body["reason"].clone(),
            body["request_id"].clone(),
        ]);
    }
    Ok(report)
}

/// `audit history`: one grant's lineage, every event in log order: the
/// grant's own stream, the browser session it was issued in, and the
/// consent given in the same authorization request.
pub async fn history(store: &Store, gid: &str) -> AuditResult<Report> {
    let mut events = events_of(store, "Grant", &[gid.to_owned()]).await?;
    let issued = events.iter().find(|event| event.event_type == "CodeIssued");
    let sid = issued.and_then(|event| fields(event)["sid"].as_str().map(str::to_owned));
    let request = issued.and_then(|event| fields(event)["request_id"].as_str().map(str::to_owned));
    let consent_stream = issued.and_then(|event| {
        let body = fields(event);
        Some(writ_domain::consent::stream_id(
            body["sub"].as_str()?,
            body["client_id"].as_str()?,
        ))
    });
    if let Some(sid) = sid {
        events.extend(events_of(store, "Session", &[sid]).await?);
    }
    if let (Some(stream), Some(request)) = (consent_stream, request) {
        events.extend(
            events_of(store, "Consent", &[stream])
                .await?
                .into_iter()
                .filter(|event| fields(event)["request_id"].as_str() == Some(request.as_str())),
        );
    }
    events.sort_by_key(StoredEvent::cursor);
    let mut report = Report::new(&[
        "cursor",
        "recorded_at",
        "aggregate",
        "event",
        "actor",
        "details",
    ]);
    for event in events {
        report.rows.push(vec![
            json!(event.cursor().to_string()),
            json!(event.recorded_at),
            json!(format!("{}/{}", event.aggregate_type, event.aggregate_id)),
            json!(event.event_type),
            event.metadata["actor"].clone(),
            json!(details(&event)),
        ]);
    }
    Ok(report)
}

/// The fields an auditor reads first; hashes and personal data are left
/// out (the latter is sealed in the log anyway).
fn details(event: &StoredEvent) -> String {
    const SHOWN: &[&str] = &[
        "kind",
        "client_id",
        "sub",
        "scopes",
        "jti",
        "jtis",
        "by",
        "reason",
        "expires_at",
        "request_id",
    ];
    let body = fields(event);
    SHOWN
        .iter()
        .filter_map(|name| {
            let value = &body[*name];
            let shown = match value {
                Value::Null => return None,
                Value::String(text) => text.clone(),
                Value::Array(items) if items.is_empty() => return None,
                Value::Array(items) => items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map_or_else(|| item.to_string(), str::to_owned)
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            Some(format!("{name}={shown}"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `audit export`: the audit index between two times, for a SIEM. It holds
/// what the projector has indexed (up to its checkpoint).
pub async fn export(store: &Store, from: DateTime<Utc>, to: DateTime<Utc>) -> AuditResult<Report> {
    let rows = store
        .db()
        .fetch_all(
            &Statement::new(
                "SELECT cursor, recorded_at, aggregate_type, aggregate_id, event_type, actor, client_id, subject
                 FROM audit_index WHERE recorded_at >= $1 AND recorded_at < $2 ORDER BY cursor",
            )
            .text(rfc3339(from))
            .text(rfc3339(to)),
        )
        .await?;
    let columns = [
        "cursor",
        "recorded_at",
        "aggregate_type",
        "aggregate_id",
        "event_type",
        "actor",
        "client_id",
        "subject",
    ];
    let mut report = Report::new(&columns);
    for row in rows {
        report.rows.push(
            columns
                .iter()
                .map(|column| row.text(column).map_or(Value::Null, Value::String))
                .collect(),
        );
    }
    Ok(report)
}
