//! Builds the revocation messages of design.md from the log: the Kafka
//! publisher sends exactly these, and the server-sent-event feed a
//! per-client view of them. What an event does not carry (a grant's client,
//! subject and audience, the expiry of the tokens it affects) comes from the
//! inline read tables, which are current to the event by the time the event
//! can be read.
//!
//! The Kafka topic is the operator's and carries every message whole. The
//! feed is per client (OpenID Connect Core §17.3: no client may track a
//! person across clients), by [`Routed::view_for`]:
//!
//! - A message concerns the clients whose own tokens it affects (its
//!   *owners*) and the clients named in those tokens' audience (the grants'
//!   `audience`, what `aud` and introspection show). `token_revoked` and
//!   `grant_revoked`: the grant's client, and its audience.
//!   `consent_withdrawn`: the consent's client, and the audience of that
//!   client's grants for the subject. `client_disabled`: the client, and
//!   the audience of its grants. `account_disabled`: every client with a
//!   grant for the subject, and those grants' audience. Anyone else is
//!   not sent the message at all.
//! - `sub` goes to owners, which were given it with the tokens. An audience
//!   client gets `sub` only where the message cannot be acted on without it
//!   (`consent_withdrawn`, `account_disabled`, whose deny rules are by
//!   subject); it saw that subject in the tokens' claims or through
//!   introspection. In `token_revoked` and `grant_revoked` the `jti`s and
//!   `gid` identify the tokens, so an audience client does not get `sub`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use writ_domain::account::AccountEvent;
use writ_domain::client::ClientEvent;
use writ_domain::consent::ConsentEvent;
use writ_domain::grant::{GrantEvent, GrantParties};
use writ_protocol::revocation::{Revocation, RevocationType, SCHEMA_VERSION};

use writ_store::views::grants::{self, Holders, PartiesRow};
use writ_store::views::tokens::{self, AccessTokensOf};
use writ_store::{Cursor, Db, EventHeader, Store, StoredEvent};

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
    let routed = build(store, headers, false).await?;
    Ok(routed.into_iter().map(|routed| routed.message).collect())
}

/// The messages with whom each concerns, for the per-client feed.
pub async fn routed_for(
    store: &Store,
    headers: &[EventHeader],
) -> Result<Vec<Routed>, sqlx::Error> {
    build(store, headers, true).await
}

async fn build(
    store: &Store,
    headers: &[EventHeader],
    route: bool,
) -> Result<Vec<Routed>, sqlx::Error> {
    let positions: Vec<i64> = headers
        .iter()
        .filter(|header| is_revocation(header))
        .map(|header| header.position)
        .collect();
    let mut messages = Vec::with_capacity(positions.len());
    for event in store.events_at(&positions).await? {
        if let Some(message) = message_for(store.db(), &event, route).await? {
            messages.push(message);
        }
    }
    Ok(messages)
}

/// One message and the clients it concerns (the module header's rules).
#[derive(Debug, Clone)]
pub struct Routed {
    pub cursor: Cursor,
    pub message: Revocation,
    /// Clients whose own tokens the message affects.
    pub owners: BTreeSet<String>,
    /// Clients in the audience of those tokens.
    pub audience: BTreeSet<String>,
}

impl Routed {
    /// The message as `client_id`'s feed shows it; `None` when it does not
    /// concern that client.
    pub fn view_for(&self, client_id: &str) -> Option<Revocation> {
        if self.owners.contains(client_id) {
            return Some(self.message.clone());
        }
        if !self.audience.contains(client_id) {
            return None;
        }
        let mut view = self.message.clone();
        if matches!(
            view.kind,
            RevocationType::TokenRevoked | RevocationType::GrantRevoked
        ) {
            view.sub = None;
        }
        Some(view)
    }
}

/// Owners and audience of the grants a subject- or client-wide message
/// reaches: `client_id`, `sub` or both narrow the grants.
async fn concerned(
    db: &Db,
    client_id: Option<&str>,
    sub: Option<&str>,
) -> Result<(BTreeSet<String>, BTreeSet<String>), sqlx::Error> {
    let holders = Holders {
        client_id: client_id.map(str::to_owned),
        sub: sub.map(str::to_owned),
        ..Holders::default()
    };
    let (mut owners, mut audience) = (BTreeSet::new(), BTreeSet::new());
    owners.extend(client_id.map(str::to_owned));
    for parties in grants::parties_of(db, &holders).await? {
        audience.extend(parties.audience());
        owners.insert(parties.client_id);
    }
    Ok((owners, audience))
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
    /// The event says how long the revocation matters (every
    /// `GrantRevoked`, and an `AccessTokenRevoked` since 1.1).
    expiry_known: bool,
    /// Since 1.1 a grant's revocation names them; before, the read model.
    parties: Option<GrantParties>,
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
        expiry_known: false,
        parties: None,
        reason: reason.to_owned(),
    };
    match event.aggregate_type.as_str() {
        "Grant" => match serde_json::from_value(event.payload.clone()).ok()? {
            GrantEvent::AccessTokenRevoked {
                jti,
                revoked_at,
                parties,
                expires_at,
                ..
            } => Some(Draft {
                jtis: vec![jti],
                gid: Some(event.aggregate_id.clone()),
                expiry_known: expires_at.is_some(),
                expires_at,
                parties,
                ..draft(RevocationType::TokenRevoked, revoked_at, "token_revoked")
            }),
            GrantEvent::GrantRevoked {
                reason,
                jtis,
                expires_at,
                revoked_at,
                parties,
                ..
            } => Some(Draft {
                jtis,
                gid: Some(event.aggregate_id.clone()),
                expires_at,
                expiry_known: true,
                parties,
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

async fn message_for(
    db: &Db,
    event: &StoredEvent,
    route: bool,
) -> Result<Option<Routed>, sqlx::Error> {
    let Some(mut draft) = draft(event) else {
        return Ok(None);
    };
    let (mut owners, mut audience) = (BTreeSet::new(), BTreeSet::new());
    if let Some(gid) = &draft.gid {
        let parties = match draft.parties.take() {
            Some(parties) => Some(parties),
            None => grants::parties(db, gid)
                .await?
                .map(PartiesRow::into_parties),
        };
        if let Some(parties) = parties {
            audience.extend(parties.audience);
            owners.insert(parties.client_id.clone());
            draft.client_id = Some(parties.client_id);
            draft.sub = parties.sub;
        }
    } else if route {
        (owners, audience) =
            concerned(db, draft.client_id.as_deref(), draft.sub.as_deref()).await?;
    }
    let reached = match (
        draft.expiry_known,
        draft.kind,
        &draft.gid,
        draft.jtis.first(),
        &draft.sub,
        &draft.client_id,
    ) {
        (true, ..) => None,
        (_, RevocationType::TokenRevoked, Some(gid), Some(jti), _, _) => {
            Some(AccessTokensOf::Jti { gid, jti })
        }
        // Every access token the rule can match; later grants' tokens only
        // make the estimate late, which keeps an entry longer, never shorter.
        (_, RevocationType::ConsentWithdrawn, _, _, Some(sub), Some(client_id)) => {
            Some(AccessTokensOf::Consent { sub, client_id })
        }
        (_, RevocationType::ClientDisabled, _, _, _, Some(client_id)) => {
            Some(AccessTokensOf::Client(client_id))
        }
        (_, RevocationType::AccountDisabled, _, _, Some(sub), _) => {
            Some(AccessTokensOf::Subject(sub))
        }
        _ => None,
    };
    if let Some(reached) = reached {
        draft.expires_at = tokens::latest_expiry(db, reached)
            .await?
            .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
            .map(|at| at.with_timezone(&Utc));
    }
    let message = Revocation {
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
    };
    Ok(Some(Routed {
        cursor: event.cursor(),
        message,
        owners,
        audience,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(kind: RevocationType, sub: Option<&str>) -> Routed {
        let at = DateTime::<Utc>::default();
        Routed {
            cursor: Cursor::sqlite(7),
            message: Revocation {
                version: SCHEMA_VERSION,
                kind,
                jtis: vec!["j1".into()],
                gid: Some("g1".into()),
                client_id: Some("owner".into()),
                sub: sub.map(str::to_owned),
                revoked_at: at,
                expires_at: at,
                reason: "r".into(),
                cursor: Cursor::sqlite(7).to_string(),
            },
            owners: ["owner".to_owned()].into(),
            audience: ["api".to_owned()].into(),
        }
    }

    #[test]
    fn a_message_reaches_its_owner_whole_and_no_stranger() {
        let message = routed(RevocationType::GrantRevoked, Some("s1"));
        assert_eq!(message.view_for("owner"), Some(message.message.clone()));
        assert_eq!(message.view_for("stranger"), None);
    }

    #[test]
    fn the_audience_gets_sub_only_where_the_deny_rule_needs_it() {
        for kind in [RevocationType::TokenRevoked, RevocationType::GrantRevoked] {
            let view = routed(kind, Some("s1")).view_for("api");
            assert_eq!(
                view.map(|v| (v.sub, v.jtis)),
                Some((None, vec!["j1".into()]))
            );
        }
        for kind in [
            RevocationType::ConsentWithdrawn,
            RevocationType::AccountDisabled,
        ] {
            let view = routed(kind, Some("s1")).view_for("api");
            assert_eq!(view.and_then(|v| v.sub).as_deref(), Some("s1"));
        }
    }

    fn stored(version: &str, event: &GrantEvent) -> StoredEvent {
        StoredEvent {
            txid: 0,
            position: 1,
            recorded_at: String::new(),
            aggregate_type: "Grant".into(),
            aggregate_id: "g1".into(),
            sequence: 9,
            event_type: "AccessTokenRevoked".into(),
            event_version: version.into(),
            payload: serde_json::to_value(event).unwrap_or_else(|e| panic!("{e}")),
            metadata: serde_json::json!({}),
            hash: String::new(),
        }
    }

    /// A 1.1 revocation is published from the event alone: the store here
    /// has no row for its grant or token. A 1.0 one names no parties.
    #[tokio::test]
    async fn a_revocation_of_version_1_1_needs_no_read_model() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open_sqlite(dir.path())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let at = DateTime::<Utc>::default();
        let expires = at + chrono::Duration::seconds(300);
        let current = GrantEvent::AccessTokenRevoked {
            jti: "j1".into(),
            by: "app".into(),
            revoked_at: at,
            parties: Some(GrantParties {
                client_id: "app".into(),
                sub: Some("s1".into()),
                audience: vec!["https://api.example/".into()],
            }),
            expires_at: Some(expires),
        };
        let routed = message_for(store.db(), &stored("1.1", &current), true)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a revocation"));
        assert_eq!(routed.message.client_id.as_deref(), Some("app"));
        assert_eq!(routed.message.sub.as_deref(), Some("s1"));
        assert_eq!(routed.message.expires_at, expires);
        assert!(
            routed.view_for("https://api.example/").is_some(),
            "its audience"
        );

        let GrantEvent::AccessTokenRevoked {
            jti,
            by,
            revoked_at,
            ..
        } = current
        else {
            panic!("a token revocation");
        };
        let old = GrantEvent::AccessTokenRevoked {
            jti,
            by,
            revoked_at,
            parties: None,
            expires_at: None,
        };
        let routed = message_for(store.db(), &stored("1.0", &old), true)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a revocation"));
        assert_eq!(routed.message.client_id, None, "looked up, and not there");
    }
}
