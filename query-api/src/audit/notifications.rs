//! `audit notifications`: proof of notification for Shared Signals. Who
//! was told of a signal (a grant's revocation, or any signal by its log
//! position), when, and when each receiver acknowledged it; and what one
//! receiver learned between two times. Both answers come from the log:
//! each stream's configuration and status as they were when the signal
//! was committed, and its receiver's deliveries and acknowledgements as
//! recorded (per batch: "had everything up to P at T").

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde_json::{json, Value};
use writ_domain::ssf_stream::{Delivery, SsfStream, SsfStreamEvent, StreamStatus};
use writ_infra::ssf::{self, Signal};
use writ_store::{Cursor, Store, StoredEvent};

use super::{events_of, events_of_types, recorded, rfc3339, AuditResult, Report};

/// Every stream's events, in log order, by stream.
async fn streams(store: &Store) -> AuditResult<Vec<(String, Vec<StoredEvent>)>> {
    let created = events_of_types(store, &["SsfStreamCreated"]).await?;
    let ids: Vec<String> = created.iter().map(|e| e.aggregate_id.clone()).collect();
    let events = events_of(store, SsfStream::TYPE, &ids).await?;
    Ok(ids
        .into_iter()
        .map(|id| {
            let own = events
                .iter()
                .filter(|e| e.aggregate_id == id)
                .cloned()
                .collect();
            (id, own)
        })
        .collect())
}

fn decoded(event: &StoredEvent) -> Option<SsfStreamEvent> {
    serde_json::from_value(event.payload.clone()).ok()
}

/// The stream as it stood just before `position`.
fn as_of(events: &[StoredEvent], position: Cursor) -> SsfStream {
    let mut stream = SsfStream::default();
    for event in events.iter().filter(|e| e.cursor() < position) {
        if let Some(payload) = decoded(event) {
            stream.apply(payload);
        }
    }
    stream
}

fn method(stream: &SsfStream) -> &'static str {
    match stream.config.as_ref().map(|c| &c.delivery) {
        Some(Delivery::Push { .. }) => "push",
        _ => "poll",
    }
}

/// Whether the stream was to carry the signal: created before it, not
/// deleted, and wanting it; a disabled stream dropped it.
fn owed(stream_id: &str, stream: &SsfStream, signal: &Signal) -> Option<&'static str> {
    let start: Cursor = stream.start_after.parse().unwrap_or_default();
    if stream.config.is_none() || stream.deleted || signal.position <= start {
        return None;
    }
    if !signal.is_for(stream_id, stream) {
        return None;
    }
    Some(match stream.status {
        StreamStatus::Disabled => "dropped: the stream was disabled",
        StreamStatus::Paused => "held: the stream was paused",
        StreamStatus::Enabled => "due",
    })
}

/// When the receiver had the signal and when it acknowledged it, or what
/// became of it instead.
fn fate(events: &[StoredEvent], signal: &Signal, push: bool) -> (Value, Value, &'static str) {
    let at = signal.position;
    let mut told = Value::Null;
    let mut acknowledged = Value::Null;
    for event in events.iter().filter(|e| e.cursor() > at) {
        let time = json!(rfc3339(recorded(event)));
        match decoded(event) {
            Some(SsfStreamEvent::SsfSetsDelivered { up_to, .. })
                if told.is_null() && up_to.parse::<Cursor>().is_ok_and(|c| c >= at) =>
            {
                told = time.clone();
                if push {
                    // RFC 8935 §2.2: the 202 is the receiver's acknowledgement.
                    return (told, time, "acknowledged");
                }
            }
            Some(SsfStreamEvent::SsfSetsAcknowledged {
                positions, floor, ..
            }) if positions.contains(&at.to_string())
                || floor.parse::<Cursor>().is_ok_and(|c| c >= at) =>
            {
                acknowledged = time;
                return (told, acknowledged, "acknowledged");
            }
            Some(SsfStreamEvent::SsfSetAbandoned { position, .. })
                if position == at.to_string() =>
            {
                return (
                    told,
                    acknowledged,
                    "abandoned: the receiver never accepted it",
                );
            }
            Some(SsfStreamEvent::SsfStreamStatusChanged {
                resume_after: Some(resume),
                ..
            }) if told.is_null() && resume.parse::<Cursor>().is_ok_and(|c| c >= at) => {
                return (told, acknowledged, "dropped: the stream was disabled");
            }
            _ => {}
        }
    }
    let outcome = if told.is_null() {
        "not yet delivered"
    } else {
        "not yet acknowledged"
    };
    (told, acknowledged, outcome)
}

const TOLD_COLUMNS: &[&str] = &[
    "position",
    "event",
    "stream_id",
    "receiver",
    "method",
    "jti",
    "told_at",
    "acknowledged_at",
    "outcome",
];

/// Which receivers were told of these signals, when, and when each
/// acknowledged.
async fn told_of(store: &Store, signals: Vec<Signal>) -> AuditResult<Report> {
    let mut report = Report::new(TOLD_COLUMNS);
    let streams = streams(store).await?;
    for signal in &signals {
        for (stream_id, events) in &streams {
            let stream = as_of(events, signal.position);
            let Some(owed) = owed(stream_id, &stream, signal) else {
                continue;
            };
            let push = method(&stream) == "push";
            let (told, acknowledged, outcome) = if owed == "due" || owed.starts_with("held") {
                fate(events, signal, push)
            } else {
                (Value::Null, Value::Null, owed)
            };
            report.rows.push(vec![
                json!(signal.position.to_string()),
                json!(signal.event_type),
                json!(stream_id),
                json!(stream.receiver),
                json!(method(&stream)),
                json!(ssf::jti(stream_id, signal.position)),
                told,
                acknowledged,
                json!(outcome),
            ]);
        }
    }
    Ok(report)
}

/// The signals of one event in the log, or every revocation of a grant.
pub async fn notifications_of(
    store: &Store,
    grant: Option<&str>,
    position: Option<Cursor>,
) -> AuditResult<Report> {
    let mut events = Vec::new();
    if let Some(gid) = grant {
        events.extend(
            events_of(store, "Grant", &[gid.to_owned()])
                .await?
                .into_iter()
                .filter(|e| e.event_type == "GrantRevoked"),
        );
    }
    if let Some(position) = position {
        let before = Cursor {
            position: position.position - 1,
            ..position
        };
        let (found, _) = store.events_of_kinds_seen(before, ssf::SOURCES, 1).await?;
        events.extend(found.into_iter().filter(|e| e.cursor() == position));
    }
    let signals = events
        .iter()
        .filter_map(|event| ssf::signal_of(event, ""))
        .collect();
    told_of(store, signals).await
}

const LEARNED_COLUMNS: &[&str] = &[
    "told_at",
    "stream_id",
    "method",
    "position",
    "event",
    "subject",
    "jti",
];

/// What `receiver` was told between `from` (inclusive) and `to`
/// (exclusive): every SET of each delivery recorded in that window.
pub async fn notifications_to(
    store: &Store,
    receiver: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AuditResult<Report> {
    let mut report = Report::new(LEARNED_COLUMNS);
    for (stream_id, events) in streams(store).await? {
        let mut had = Cursor::default();
        for event in &events {
            let Some(SsfStreamEvent::SsfSetsDelivered { up_to, .. }) = decoded(event) else {
                continue;
            };
            let stream = as_of(&events, event.cursor());
            if stream.receiver != receiver {
                break;
            }
            let start: Cursor = stream.start_after.parse().unwrap_or_default();
            let up_to: Cursor = up_to.parse().unwrap_or_default();
            let after = had.max(start);
            had = had.max(up_to);
            let when = recorded(event);
            if when < from || when >= to || up_to <= after {
                continue;
            }
            let mut cursor = after;
            'read: loop {
                let (signals, reached) = ssf::signals_after(store, "", cursor, 1_000).await?;
                for signal in signals {
                    if signal.position > up_to {
                        break 'read;
                    }
                    if signal.is_for(&stream_id, &stream) {
                        report.rows.push(vec![
                            json!(rfc3339(when)),
                            json!(stream_id),
                            json!(method(&stream)),
                            json!(signal.position.to_string()),
                            json!(signal.event_type),
                            json!(signal.sub),
                            json!(ssf::jti(&stream_id, signal.position)),
                        ]);
                    }
                }
                if reached == cursor || reached >= up_to {
                    break;
                }
                cursor = reached;
            }
        }
    }
    report.rows.sort_by(|a, b| {
        a[0].as_str()
            .cmp(&b[0].as_str())
            .then(a[3].as_str().cmp(&b[3].as_str()))
    });
    Ok(report)
}
