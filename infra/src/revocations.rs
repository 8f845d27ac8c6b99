//! Builds the revocation messages of design.md from the log: the Kafka
//! publisher and the server-sent-event feed send exactly these. What an
//! event does not carry (a grant's client and subject, the expiry of the
//! tokens it affects) comes from the inline read tables, which are current
//! to the event by the time the event can be read.

use chrono::{DateTime, Utc};
use writ_domain::account::AccountEvent;
use writ_domain::client::ClientEvent;
use writ_domain::consent::ConsentEvent;
use writ_domain::grant::GrantEvent;
use writ_domain::revocation::{Revocation, RevocationType, SCHEMA_VERSION};

use crate::store::statement::Statement;
use crate::store::{Db, EventHeader, RowExt, Store, StoredEvent};

/// The event types that become a message.
pub const REVOCATION_EVENTS: &[&str] = &[
    "AccessTokenRevoked",
    "GrantRevoked",
    "ConsentWithdrawn",
    "ClientDisabled",
    "AccountDisabled",
];

pub fn is_revocation(header: &EventHeader) -> bool {
    REVOCATION_EVENTS.contains(&header.event_type.as_str())
}

/// The messages for the revocations among `headers`, in log order.
pub async fn messages_for(
    store: &Store,
    headers: &[EventHeader],
) -> Result<Vec<Revocation>, sqlx::Error> {
    let positions: Vec<i64> = headers
        .iter()
        .filter(|header| is_revocation(header))
        .map(|header| header.position)
        .collect();
    let mut messages = Vec::with_capacity(positions.len());
    for event in store.events_at(&positions).await? {
        if let Some(message) = message_for(store.db(), &event).await? {
            messages.push(message);
        }
    }
    Ok(messages)
}

/// What one event says, before the read tables fill in the rest.
struct Draft {
    kind: RevocationType,
    jtis: Vec<String>,
    gid: Option<String>,
    client_id: Option<String>,
    sub: Option<String>,
    revoked_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    reason: String,
}

fn draft(event: &StoredEvent) -> Option<Draft> {
    let draft = |kind, revoked_at, reason: &str| Draft {
        kind,
        jtis: Vec::new(),
        gid: None,
        client_id: None,
        sub: None,
        revoked_at,
        expires_at: None,
        reason: reason.to_owned(),
    };
    match event.aggregate_type.as_str() {
        "Grant" => match serde_json::from_value(event.payload.clone()).ok()? {
            GrantEvent::AccessTokenRevoked {
                jti, revoked_at, ..
            } => Some(Draft {
                jtis: vec![jti],
                gid: Some(event.aggregate_id.clone()),
                ..draft(RevocationType::TokenRevoked, revoked_at, "token_revoked")
            }),
            GrantEvent::GrantRevoked {
                reason,
                jtis,
                expires_at,
                revoked_at,
                ..
            } => Some(Draft {
                jtis,
                gid: Some(event.aggregate_id.clone()),
                expires_at,
                ..draft(RevocationType::GrantRevoked, revoked_at, &reason)
            }),
            _ => None,
        },
        "Consent" => match serde_json::from_value(event.payload.clone()).ok()? {
            ConsentEvent::ConsentWithdrawn {
                sub,
                client_id,
                reason,
                withdrawn_at,
                ..
            } => Some(Draft {
                sub: Some(sub),
                client_id: Some(client_id),
                ..draft(RevocationType::ConsentWithdrawn, withdrawn_at, &reason)
            }),
            _ => None,
        },
        "Client" => match serde_json::from_value(event.payload.clone()).ok()? {
            ClientEvent::ClientDisabled {
                reason,
                disabled_at,
            } => Some(Draft {
                client_id: Some(event.aggregate_id.clone()),
                ..draft(RevocationType::ClientDisabled, disabled_at, &reason)
            }),
            _ => None,
        },
        "Account" => match serde_json::from_value(event.payload.clone()).ok()? {
            AccountEvent::AccountDisabled {
                sub,
                reason,
                disabled_at,
            } => Some(Draft {
                sub: Some(sub),
                ..draft(RevocationType::AccountDisabled, disabled_at, &reason)
            }),
            _ => None,
        },
        _ => None,
    }
}

async fn message_for(db: &Db, event: &StoredEvent) -> Result<Option<Revocation>, sqlx::Error> {
    let Some(mut draft) = draft(event) else {
        return Ok(None);
    };
    if let Some(gid) = &draft.gid {
        if let Some(row) = db
            .fetch_optional(
                &Statement::new("SELECT client_id, sub FROM grants WHERE gid = $1").text(gid),
            )
            .await?
        {
            draft.client_id = row.text("client_id");
            draft.sub = row.text("sub");
        }
    }
    let latest = match draft.kind {
        RevocationType::GrantRevoked => None,
        RevocationType::TokenRevoked => Some(
            Statement::new(
                "SELECT max(expires_at) AS latest FROM tokens WHERE gid = $1 AND kind = 'access' AND jti = $2",
            )
            .opt(draft.gid.clone())
            .opt(draft.jtis.first().cloned()),
        ),
        // Every access token the rule can match; later grants' tokens only
        // make the estimate late, which keeps an entry longer, never shorter.
        RevocationType::ConsentWithdrawn => Some(
            Statement::new(
                "SELECT max(t.expires_at) AS latest FROM tokens t JOIN grants g ON g.gid = t.gid
                 WHERE t.kind = 'access' AND g.sub = $1 AND g.client_id = $2",
            )
            .opt(draft.sub.clone())
            .opt(draft.client_id.clone()),
        ),
        RevocationType::ClientDisabled => Some(
            Statement::new(
                "SELECT max(t.expires_at) AS latest FROM tokens t JOIN grants g ON g.gid = t.gid
                 WHERE t.kind = 'access' AND g.client_id = $1",
            )
            .opt(draft.client_id.clone()),
        ),
        RevocationType::AccountDisabled => Some(
            Statement::new(
                "SELECT max(t.expires_at) AS latest FROM tokens t JOIN grants g ON g.gid = t.gid
                 WHERE t.kind = 'access' AND g.sub = $1",
            )
            .opt(draft.sub.clone()),
        ),
    };
    if let Some(statement) = latest {
        draft.expires_at = db
            .fetch_optional(&statement)
            .await?
            .and_then(|row| row.text("latest"))
            .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
            .map(|at| at.with_timezone(&Utc));
    }
    Ok(Some(Revocation {
        version: SCHEMA_VERSION,
        kind: draft.kind,
        jtis: draft.jtis,
        gid: draft.gid,
        client_id: draft.client_id,
        sub: draft.sub,
        revoked_at: draft.revoked_at,
        // Nothing alive to deny: consumers may drop it at once.
        expires_at: draft
            .expires_at
            .unwrap_or(draft.revoked_at)
            .max(draft.revoked_at),
        reason: draft.reason,
        cursor: event.cursor().to_string(),
    }))
}
