//! Grants as they stood at a moment: each grant's events folded up to it,
//! then ended by the disables and withdrawals committed by then.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use writ_store::views::grants::{self, Holders};
use writ_store::Store;
use writ_store::StoredEvent;

use super::{
    events_of, events_of_types, fields, recorded, rfc3339, scopes_field, time_field, AuditResult,
    Report,
};

/// Not yet working: a code not redeemed, a device grant not redeemed.
const CODE_ISSUED: &str = "code issued";
const DEVICE_PENDING: &str = "device pending";

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
    /// RFC 8693: the grant it was exchanged from, and who acts in it.
    parent_gid: Option<String>,
    act: Option<String>,
}

impl GrantState {
    fn status(&self, at: DateTime<Utc>) -> &'static str {
        if self.ended.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|expiry| expiry <= at) {
            "expired"
        } else if self.kind == CODE_ISSUED {
            CODE_ISSUED
        } else if self.kind == DEVICE_PENDING {
            DEVICE_PENDING
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
            "CodeIssued" | "GrantStarted" | "DeviceAuthorizationStarted" | "GrantExchanged" => {
                let started = state.as_ref().map_or(recorded(event), |s| s.started_at);
                state = Some(GrantState {
                    gid: gid.to_owned(),
                    kind: match event.event_type.as_str() {
                        "CodeIssued" => CODE_ISSUED.to_owned(),
                        "DeviceAuthorizationStarted" => DEVICE_PENDING.to_owned(),
                        "GrantExchanged" => "token_exchange".to_owned(),
                        _ => text("kind").unwrap_or_default(),
                    },
                    client_id: text("client_id").unwrap_or_default(),
                    sub: text("sub"),
                    scopes: scopes_field(event),
                    started_at: started,
                    expires_at: time_field(event, "expires_at"),
                    ended: None,
                    parent_gid: text("parent_gid"),
                    act: actors(&body["act"]),
                });
            }
            // A code grant starts working when its code is redeemed, a
            // device grant when the device redeems the person's approval.
            "CodeRedeemed" | "DeviceCodeRedeemed" => {
                if let Some(state) = state.as_mut() {
                    state.kind = if event.event_type == "CodeRedeemed" {
                        "authorization_code"
                    } else {
                        "device_code"
                    }
                    .to_owned();
                    state.expires_at = None;
                }
            }
            "DeviceAuthorizationApproved" => {
                if let Some(state) = state.as_mut() {
                    state.sub = text("sub");
                }
            }
            "DeviceAuthorizationDenied" => {
                if let Some(state) = state.as_mut() {
                    state.sub = text("sub");
                    state.end(recorded(event), "denied by the person".into());
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
    if state.kind != CODE_ISSUED && state.kind != DEVICE_PENDING {
        let refresh = match (refresh_family, refresh_idle) {
            (Some(family), Some(idle)) => Some(family.min(idle)),
            (family, idle) => family.or(idle),
        };
        state.expires_at = access.max(refresh);
    }
    Some(state)
}

/// RFC 8693 §4.1's `act` as a reader follows it: the current actor
/// first, each as `client_id` (with its `sub` when that differs), then
/// the earlier ones after `<-`.
fn actors(act: &serde_json::Value) -> Option<String> {
    let mut shown = Vec::new();
    let mut actor = act;
    while let Some(client) = actor["client_id"].as_str() {
        shown.push(match actor["sub"].as_str() {
            Some(sub) if sub != client => format!("{client} ({sub})"),
            _ => client.to_owned(),
        });
        actor = &actor["act"];
    }
    (!shown.is_empty()).then(|| shown.join(" <- "))
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
    let holders = Holders {
        client_id: client.map(str::to_owned),
        sub: Some(sub.to_owned()),
        ..Holders::default()
    };
    let gids = grants::held_by(store.db(), &holders).await?;
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
        "parent_gid",
        "act",
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
            json!(grant.parent_gid),
            json!(grant.act),
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
    let gids = grants::with_scope(store.db(), scope, client).await?;
    let mut report = Report::new(&[
        "sub",
        "client_id",
        "gid",
        "scopes",
        "started_at",
        "expires_at",
        "act",
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
                json!(grant.act),
            ]);
        }
    }
    Ok(report)
}
