//! A subject's consent history, one grant's lineage, and the export.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use writ_store::statement::Statement;
use writ_store::views::consents;
use writ_store::Store;
use writ_store::{RowExt, StoredEvent};

use super::{events_of, fields, rfc3339, scopes_field, AuditResult, Report};

/// `audit consents`: every consent event of a subject, in log order.
pub async fn consents(store: &Store, sub: &str) -> AuditResult<Report> {
    let clients = consents::clients_of(store.db(), sub).await?;
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

/// Where a person's sign-in and consent met the grant: the event naming
/// the browser session, the person and the client, and the request both
/// the grant and the consent were recorded in.
struct SignedInAt {
    sid: Option<String>,
    consent_stream: Option<String>,
    request_id: Option<String>,
}

/// A code grant's `CodeIssued`, or a device grant's approval (RFC 8628),
/// whose client is in the grant's first event and whose consent was
/// recorded by the verification page's request.
fn signed_in_at(events: &[StoredEvent]) -> Option<SignedInAt> {
    let text = |event: &StoredEvent, name: &str| fields(event)[name].as_str().map(str::to_owned);
    let consent = |sub: Option<String>, client: Option<String>| {
        Some(writ_domain::consent::stream_id(&sub?, &client?))
    };
    if let Some(issued) = events.iter().find(|e| e.event_type == "CodeIssued") {
        return Some(SignedInAt {
            sid: text(issued, "sid"),
            consent_stream: consent(text(issued, "sub"), text(issued, "client_id")),
            request_id: text(issued, "request_id"),
        });
    }
    let started = events.first()?;
    let approved = events
        .iter()
        .find(|e| e.event_type == "DeviceAuthorizationApproved")?;
    Some(SignedInAt {
        sid: text(approved, "sid"),
        consent_stream: consent(text(approved, "sub"), text(started, "client_id")),
        request_id: approved.metadata["request_id"].as_str().map(str::to_owned),
    })
}

/// `audit history`: one grant's lineage, every event in log order: the
/// grant's own stream, the browser session it was issued (or a device
/// grant approved) in, and the consent given in the same request.
pub async fn history(store: &Store, gid: &str) -> AuditResult<Report> {
    let mut events = events_of(store, "Grant", &[gid.to_owned()]).await?;
    // RFC 8693: an exchanged grant's lineage runs through every grant it
    // descends from, so the chain of who acted for whom reads in order.
    let ancestors: Vec<String> = events
        .first()
        .filter(|first| first.event_type == "GrantExchanged")
        .and_then(|first| serde_json::from_value(fields(first)["ancestors"].clone()).ok())
        .unwrap_or_default();
    if !ancestors.is_empty() {
        events.extend(events_of(store, "Grant", &ancestors).await?);
    }
    let (sid, consent_stream, request) = match signed_in_at(&events) {
        Some(at) => (at.sid, at.consent_stream, at.request_id),
        None => (None, None, None),
    };
    if let Some(sid) = sid {
        // Back-Channel Logout: when the session ended, the grant's client
        // was told (or Writ gave up telling it), attempt by attempt.
        let client = events
            .first()
            .and_then(|first| fields(first)["client_id"].as_str().map(str::to_owned));
        if let Some(client) = client {
            let logout = writ_domain::backchannel_logout::BackchannelLogout::stream_id(
                &sid,
                &client,
                writ_infra::crypto::sha256_hex,
            );
            events.extend(events_of(store, "BackchannelLogout", &[logout]).await?);
        }
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
        "audience",
        // The DPoP key a token or code is bound to (a thumbprint, public).
        "jkt",
        "dpop_jkt",
        // RFC 8693: where an exchanged grant comes from and who acts in it.
        "parent_gid",
        "act",
        // Back-Channel Logout: each delivery attempt and its outcome.
        "attempt",
        "attempts",
        "status",
        "retry_at",
    ];
    let body = fields(event);
    // How the client authenticated, when a client's request caused it.
    let method = event.metadata["client_auth"]
        .as_str()
        .map(|method| format!("client_auth={method}"));
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
        .chain(method)
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
