//! Shared Signals (OpenID SSF 1.0, CAEP 1.0, RISC 1.0): which events in
//! the log are security signals, and the Security Event Token (RFC 8417)
//! each becomes for a stream. A SET is a pure function of its log event
//! and its stream, so a SET sent again (a retry, a re-poll, after a
//! restart) is the same SET: its `jti` names the stream and the event's
//! position, its `iat` is the event's commit time, and RS256 (PKCS#1 v1.5)
//! signatures are deterministic under one key.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use writ_domain::account::AccountEvent;
use writ_domain::grant::GrantEvent;
use writ_domain::ssf_stream::{SsfStream, SsfStreamEvent};
use writ_domain::values::Sealed;
use writ_store::{Cursor, Store, StoredEvent};

use crate::signing::{jwt, KeySet};

pub use writ_protocol::signals::{
    ACCOUNT_DISABLED, ACCOUNT_ENABLED, ACCOUNT_PURGED, CREDENTIAL_CHANGE, POLL, PUSH, SCOPE,
    SESSION_REVOKED, SET_TYPE, VERIFICATION,
};

/// What a stream may ask for. Verification events are not asked for: a
/// stream gets those it requests (SSF §8.1.4).
pub const EVENTS_SUPPORTED: &[&str] = &[
    SESSION_REVOKED,
    CREDENTIAL_CHANGE,
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
    ACCOUNT_PURGED,
];

/// The log's event types that are signals; no other payload is read.
pub const SOURCES: &[&str] = &[
    "GrantRevoked",
    "PasswordChanged",
    "AccountDisabled",
    "AccountEnabled",
    "AccountForgotten",
    "SsfVerificationRequested",
];

/// What wakes the pusher in this process: a signal, or a stream created,
/// changed or enabled (its held SETs are then due).
pub const PUSH_WAKERS: &[&str] = &[
    "GrantRevoked",
    "PasswordChanged",
    "AccountDisabled",
    "AccountEnabled",
    "AccountForgotten",
    "SsfVerificationRequested",
    "SsfStreamCreated",
    "SsfStreamUpdated",
    "SsfStreamStatusChanged",
];

/// The signing algorithm of every SET (the interoperability profile's).
pub const ALG: &str = "RS256";

/// One event in the log as a security signal, before it is addressed to
/// a stream.
#[derive(Debug, Clone)]
pub struct Signal {
    pub position: Cursor,
    pub event_type: &'static str,
    /// The person it is about, for a stream's removed subjects.
    pub sub: Option<String>,
    /// A verification is for the stream that asked for it alone.
    pub for_stream: Option<String>,
    sub_id: Value,
    body: Value,
    iat: i64,
}

/// The event types a stream with this request receives: the supported
/// ones it asked for, unknown ones ignored; all of them when it asked for
/// none in particular.
pub fn events_delivered(requested: Option<&[String]>) -> Vec<&'static str> {
    match requested {
        None => EVENTS_SUPPORTED.to_vec(),
        Some(requested) => EVENTS_SUPPORTED
            .iter()
            .copied()
            .filter(|supported| requested.iter().any(|r| r == supported))
            .collect(),
    }
}

fn seconds(at: &DateTime<Utc>) -> i64 {
    at.timestamp()
}

fn iss_sub(issuer: &str, sub: &str) -> Value {
    json!({"format": "iss_sub", "iss": issuer, "sub": sub})
}

fn english(text: String) -> Value {
    json!({ "en": text })
}

/// CAEP's `initiating_entity` and an administrator's sentence for each
/// cause of a revocation.
fn revocation_cause(reason: &str) -> (&'static str, String) {
    let (entity, sentence) = match reason {
        "logout" => ("user", "the person logged out"),
        "consent_withdrawn" => ("user", "the person withdrew their consent"),
        "refresh_token_revoked" => ("user", "the client revoked the grant (RFC 7009)"),
        "client_disabled" => ("admin", "the client was disabled"),
        "account_disabled" => ("admin", "the account was disabled"),
        "account_forgotten" => ("admin", "the account was forgotten"),
        "admin" => ("admin", "an administrator revoked the grant"),
        "password_changed" => ("policy", "the password was changed"),
        "parent_revoked" => ("policy", "the grant it was exchanged from was revoked"),
        "refresh_token_reuse" => ("policy", "a rotated refresh token was used again"),
        "code_replay" => ("policy", "its authorization code was used twice"),
        _ => ("system", ""),
    };
    let sentence = if sentence.is_empty() {
        format!("the grant was revoked ({reason})")
    } else {
        sentence.to_owned()
    };
    (entity, sentence)
}

/// The signal an event in the log is, if it is one.
pub fn signal_of(event: &StoredEvent, issuer: &str) -> Option<Signal> {
    if !SOURCES.contains(&event.event_type.as_str()) {
        return None;
    }
    let iat = DateTime::parse_from_rfc3339(&event.recorded_at)
        .map(|at| at.timestamp())
        .unwrap_or_default();
    let signal = |event_type, sub: Option<String>, sub_id, body| Signal {
        position: event.cursor(),
        event_type,
        sub,
        for_stream: None,
        sub_id,
        body,
        iat,
    };
    let payload = event.payload.clone();
    match event.event_type.as_str() {
        "GrantRevoked" => {
            let GrantEvent::GrantRevoked {
                reason,
                revoked_at,
                parties,
                ..
            } = serde_json::from_value(payload).ok()?
            else {
                return None;
            };
            let sub = parties.and_then(|p| p.sub);
            let mut sub_id = json!({
                "format": "complex",
                "session": {"format": "opaque", "id": event.aggregate_id},
            });
            if let Some(sub) = &sub {
                sub_id["user"] = iss_sub(issuer, sub);
            }
            let (entity, sentence) = revocation_cause(&reason);
            let body = json!({
                "event_timestamp": seconds(&revoked_at),
                "initiating_entity": entity,
                "reason_admin": english(sentence),
            });
            Some(signal(SESSION_REVOKED, sub, sub_id, body))
        }
        "SsfVerificationRequested" => {
            let SsfStreamEvent::SsfVerificationRequested { state, .. } =
                serde_json::from_value(payload).ok()?
            else {
                return None;
            };
            let mut body = json!({});
            if let Some(state) = state {
                body["state"] = Value::String(state);
            }
            let sub_id = json!({"format": "opaque", "id": event.aggregate_id});
            Some(Signal {
                for_stream: Some(event.aggregate_id.clone()),
                ..signal(VERIFICATION, None, sub_id, body)
            })
        }
        _ => {
            let account: AccountEvent = serde_json::from_value(payload).ok()?;
            let sub = account.sub().to_owned();
            let sub_id = iss_sub(issuer, &sub);
            let (event_type, body) = match account {
                AccountEvent::PasswordChanged { changed_at, .. } => (
                    CREDENTIAL_CHANGE,
                    json!({
                        "credential_type": "password",
                        "change_type": "update",
                        "event_timestamp": seconds(&changed_at),
                        "initiating_entity": "admin",
                        "reason_admin": english("the password was set by an administrator".into()),
                    }),
                ),
                // The administrator's own words stay in the log: receivers
                // are other parties, and RISC's `reason` has no value for them.
                AccountEvent::AccountDisabled { .. } => (
                    ACCOUNT_DISABLED,
                    json!({"reason_admin": english("an administrator disabled the account".into())}),
                ),
                AccountEvent::AccountEnabled { .. } => (
                    ACCOUNT_ENABLED,
                    json!({"reason_admin": english("an administrator enabled the account".into())}),
                ),
                AccountEvent::AccountForgotten { .. } => (
                    ACCOUNT_PURGED,
                    json!({"reason_admin": english("the account was forgotten".into())}),
                ),
                _ => return None,
            };
            Some(signal(event_type, Some(sub), sub_id, body))
        }
    }
}

/// A SET's `jti`: the event's position and the stream, so the same SET
/// always has the same `jti`, and a poller's acknowledgement names the
/// position it acknowledges.
pub fn jti(stream_id: &str, position: Cursor) -> String {
    format!("{position}.{stream_id}")
}

/// The position a `jti` of this stream names.
pub fn position_of(stream_id: &str, jti: &str) -> Option<Cursor> {
    let (position, stream) = jti.split_once('.')?;
    (stream == stream_id)
        .then(|| position.parse().ok())
        .flatten()
}

impl Signal {
    /// When its event was committed (the SET's `iat`), in seconds.
    pub fn committed_at(&self) -> i64 {
        self.iat
    }

    /// Whether this stream receives this signal, status aside.
    pub fn is_for(&self, stream_id: &str, stream: &SsfStream) -> bool {
        if let Some(only) = &self.for_stream {
            return only == stream_id;
        }
        let Some(config) = &stream.config else {
            return false;
        };
        // Every signal but a verification is of a supported type, so the
        // request alone decides (`events_delivered` without its list).
        let requested = config
            .events_requested
            .as_ref()
            .is_none_or(|requested| requested.iter().any(|r| r == self.event_type));
        requested && stream.includes_subject(self.sub.as_deref())
    }

    /// For this poll stream and not yet acknowledged out of order.
    pub fn awaits_ack(&self, stream_id: &str, stream: &SsfStream) -> bool {
        self.is_for(stream_id, stream) && !stream.acked_above.contains(&self.position.to_string())
    }

    /// The SET's claims (RFC 8417, SSF §4): no `sub` and no `exp`; the
    /// subject in `sub_id`.
    pub fn claims(&self, issuer: &str, stream_id: &str, receiver: &str) -> Value {
        json!({
            "iss": issuer,
            "aud": receiver,
            "jti": jti(stream_id, self.position),
            "iat": self.iat,
            "sub_id": self.sub_id,
            "events": { self.event_type: self.body },
        })
    }

    /// The signed SET, or `None` when no RS256 key is active.
    pub fn sign(
        &self,
        keys: &KeySet,
        issuer: &str,
        stream_id: &str,
        receiver: &str,
    ) -> Option<String> {
        let signer = keys.signer(ALG)?;
        jwt::encode(&signer, SET_TYPE, &self.claims(issuer, stream_id, receiver)).ok()
    }
}

/// The signals committed after `after`, at most `limit` source events
/// read, and the position the read reached.
pub async fn signals_after(
    store: &Store,
    issuer: &str,
    after: Cursor,
    limit: i64,
) -> Result<(Vec<Signal>, Cursor), sqlx::Error> {
    let (events, reached) = store.events_of_kinds_after(after, SOURCES, limit).await?;
    let signals = events
        .iter()
        .filter_map(|event| signal_of(event, issuer))
        .collect();
    Ok((signals, reached))
}

fn authorization_context(stream_id: &str) -> String {
    format!("ssf-stream/{stream_id}/authorization")
}

/// A push receiver's `Authorization` value as the log keeps it: sealed
/// under the key-encryption key, bound to its stream.
pub fn seal_authorization(keys: &crate::keys::KeyRing, stream_id: &str, value: &str) -> Sealed {
    Sealed(crate::crypto::seal(
        &keys.key_encryption,
        &authorization_context(stream_id),
        value.as_bytes(),
    ))
}

pub fn open_authorization(
    keys: &crate::keys::KeyRing,
    stream_id: &str,
    sealed: &Sealed,
) -> Option<String> {
    let plain = crate::crypto::open(
        &keys.key_encryption,
        &authorization_context(stream_id),
        &sealed.0,
    )
    .ok()?;
    String::from_utf8(plain).ok()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use writ_domain::grant::GrantParties;
    use writ_domain::ssf_stream::{Delivery, StreamConfig};

    use super::*;

    fn stored(aggregate_type: &str, id: &str, position: i64, payload: Value) -> StoredEvent {
        let event_type = payload
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default();
        StoredEvent {
            txid: 0,
            position,
            recorded_at: "2026-12-06T10:00:00.000000Z".into(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: id.into(),
            sequence: 1,
            event_type,
            event_version: "1.1".into(),
            payload,
            metadata: Value::Null,
            hash: String::new(),
        }
    }

    fn revoked(sub: Option<&str>, reason: &str) -> StoredEvent {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0).unwrap();
        let event = GrantEvent::GrantRevoked {
            by: "client".into(),
            reason: reason.into(),
            jtis: Vec::new(),
            expires_at: None,
            revoked_at: at,
            parties: Some(GrantParties {
                client_id: "app".into(),
                sub: sub.map(str::to_owned),
                audience: Vec::new(),
            }),
        };
        stored("Grant", "g1", 7, serde_json::to_value(event).unwrap())
    }

    fn stream(requested: Option<Vec<String>>) -> SsfStream {
        SsfStream {
            receiver: "rx".into(),
            config: Some(StreamConfig {
                delivery: Delivery::Poll,
                events_requested: requested,
                description: None,
            }),
            ..SsfStream::default()
        }
    }

    #[test]
    fn a_revocation_is_a_session_revoked_set_naming_the_person_and_the_grant() {
        let signal = signal_of(&revoked(Some("s1"), "consent_withdrawn"), "https://writ").unwrap();
        let claims = signal.claims("https://writ", "st", "rx");
        assert_eq!(claims["aud"], "rx");
        assert_eq!(claims["jti"], "00000000000000000007.st");
        assert_eq!(claims["iat"], 1_796_551_200);
        assert!(claims.get("sub").is_none() && claims.get("exp").is_none());
        assert_eq!(
            claims["sub_id"],
            json!({"format": "complex",
                   "user": {"format": "iss_sub", "iss": "https://writ", "sub": "s1"},
                   "session": {"format": "opaque", "id": "g1"}})
        );
        let body = &claims["events"][SESSION_REVOKED];
        assert_eq!(body["initiating_entity"], "user");
        assert_eq!(body["event_timestamp"], 1_796_547_600);
        assert!(body["reason_admin"]["en"]
            .as_str()
            .is_some_and(|r| !r.is_empty()));
        let machine = signal_of(&revoked(None, "something_new"), "https://writ").unwrap();
        let claims = machine.claims("https://writ", "st", "rx");
        assert!(claims["sub_id"].get("user").is_none());
        assert_eq!(
            claims["events"][SESSION_REVOKED]["initiating_entity"],
            "system"
        );
    }

    #[test]
    fn account_events_are_caep_and_risc_sets_and_other_events_are_nothing() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0).unwrap();
        let cases = [
            (
                AccountEvent::PasswordChanged {
                    sub: "s1".into(),
                    password_hash: writ_domain::values::Sealed("x".into()),
                    changed_at: at,
                },
                CREDENTIAL_CHANGE,
            ),
            (
                AccountEvent::AccountDisabled {
                    sub: "s1".into(),
                    reason: "private words".into(),
                    disabled_at: at,
                },
                ACCOUNT_DISABLED,
            ),
            (
                AccountEvent::AccountEnabled {
                    sub: "s1".into(),
                    reason: "r".into(),
                    enabled_at: at,
                },
                ACCOUNT_ENABLED,
            ),
            (
                AccountEvent::AccountForgotten {
                    sub: "s1".into(),
                    forgotten_at: at,
                },
                ACCOUNT_PURGED,
            ),
        ];
        for (event, uri) in cases {
            let stored = stored("Account", "a1", 3, serde_json::to_value(event).unwrap());
            let signal = signal_of(&stored, "https://writ").unwrap();
            let claims = signal.claims("https://writ", "st", "rx");
            assert_eq!(claims["sub_id"]["sub"], "s1", "{uri}");
            assert!(claims["events"].get(uri).is_some(), "{uri}");
            assert!(!claims.to_string().contains("private words"));
        }
        let created = AccountEvent::ClaimsUpdated {
            sub: "s1".into(),
            email: None,
            name: None,
            updated_at: at,
        };
        let stored = stored("Account", "a1", 3, serde_json::to_value(created).unwrap());
        assert!(signal_of(&stored, "https://writ").is_none());
    }

    #[test]
    fn a_stream_gets_what_it_asked_for_about_whom_it_did_not_remove() {
        let signal = signal_of(&revoked(Some("s1"), "logout"), "https://writ").unwrap();
        assert!(signal.is_for("st", &stream(None)));
        assert!(signal.is_for(
            "st",
            &stream(Some(vec![SESSION_REVOKED.into(), "urn:x".into()]))
        ));
        assert!(!signal.is_for("st", &stream(Some(vec![CREDENTIAL_CHANGE.into()]))));
        let mut removed = stream(None);
        removed
            .excluded
            .push(json!({"format": "opaque", "id": "s1"}));
        assert!(!signal.is_for("st", &removed));
        assert_eq!(
            events_delivered(Some(&["urn:unknown".to_owned()])),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn every_signal_wakes_the_pusher() {
        assert!(SOURCES.iter().all(|source| PUSH_WAKERS.contains(source)));
    }

    #[test]
    fn a_jti_names_its_position_for_its_own_stream_only() {
        let position = Cursor {
            txid: 12,
            position: 34,
        };
        let jti = jti("st", position);
        assert_eq!(position_of("st", &jti), Some(position));
        assert_eq!(position_of("other", &jti), None);
        assert_eq!(position_of("st", "garbage"), None);
        assert_eq!(position_of("st", ".st"), None);
    }
}
