//! Inline read rows: the security-critical state (clients, accounts and
//! usernames, consents, grants, tokens, signing keys), written by the
//! committer in the events' own transaction, and by the rebuild with the
//! very same code. Each row comes from one aggregate's events; times come
//! from the events, never from the wall clock.

use chrono::{DateTime, SecondsFormat, Utc};
use cqrs_es::Aggregate;
use serde::de::DeserializeOwned;
use writ_domain::account::{Account, AccountEvent};
use writ_domain::client::{Client, ClientEvent};
use writ_domain::consent::{Consent, ConsentEvent};
use writ_domain::grant::Grant;
use writ_domain::session::{Session, SessionEvent};
use writ_domain::signing_key::{SigningKey, SigningKeyEvent};

mod grant;

use super::change::{Assign, Change};
use super::statement::Statement;
use super::views::accounts::{account, username, AccountStatus};
use super::views::clients::{client, ClientStatus};
use super::views::consents::{consent, ConsentStatus};
use super::views::keys::{signing_key, KeyStatus};
use super::views::sessions::{session, SessionStatus};
use super::views::{ACCOUNTS, CLIENTS, CONSENTS, SESSIONS, SIGNING_KEYS, USERNAMES};
use super::StoredEvent;
use grant::grant;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{aggregate_type}/{event_type} v{event_version} at position {position} is not an event this version of Writ knows")]
    Unknown {
        aggregate_type: String,
        event_type: String,
        event_version: String,
        position: i64,
    },
}

/// Timestamps in read tables are RFC 3339 text with fixed microsecond
/// precision, so string order is time order on every backend.
pub fn timestamp(time: &DateTime<Utc>) -> String {
    let mut text = String::with_capacity(27);
    write_timestamp(time, &mut text);
    text
}

/// [`timestamp`] into a buffer. Digit by digit: chrono's formatter, one
/// `fmt` call per field, was a tenth of a bulk replay's time.
pub fn write_timestamp(time: &DateTime<Utc>, out: &mut String) {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (time.year(), time.nanosecond());
    // Leap seconds and years beyond four digits: chrono's own rendering.
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.push_str(&time.to_rfc3339_opts(SecondsFormat::Micros, true));
        return;
    }
    let digits = |out: &mut String, value: u32, width: u32, then: char| {
        for place in (0..width).rev() {
            out.push(char::from(b'0' + (value / 10_u32.pow(place) % 10) as u8));
        }
        out.push(then);
    };
    digits(out, year as u32, 4, '-');
    digits(out, time.month(), 2, '-');
    digits(out, time.day(), 2, 'T');
    digits(out, time.hour(), 2, ':');
    digits(out, time.minute(), 2, ':');
    digits(out, time.second(), 2, '.');
    digits(out, nanos / 1000, 6, 'Z');
}

/// An event's payload as the changes read it: parsed already (the
/// committer's events, a stored row's JSON) or as the text the bulk replay
/// streams, decoded straight into the event type.
pub trait Payload {
    fn decode<E: DeserializeOwned>(&self) -> Option<E>;
}

impl Payload for &serde_json::Value {
    fn decode<E: DeserializeOwned>(&self) -> Option<E> {
        E::deserialize(*self).ok()
    }
}

impl Payload for &str {
    fn decode<E: DeserializeOwned>(&self) -> Option<E> {
        serde_json::from_str(self).ok()
    }
}

/// What the changes need of an event besides its payload.
#[derive(Debug, Clone, Copy)]
pub struct EventHead<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub position: i64,
    pub cursor: super::Cursor,
}

impl<'a> From<&'a StoredEvent> for EventHead<'a> {
    fn from(event: &'a StoredEvent) -> Self {
        Self {
            aggregate_type: &event.aggregate_type,
            aggregate_id: &event.aggregate_id,
            event_type: &event.event_type,
            event_version: &event.event_version,
            position: event.position,
            cursor: event.cursor(),
        }
    }
}

fn decode<E: DeserializeOwned>(
    head: EventHead<'_>,
    payload: &impl Payload,
) -> Result<E, ApplyError> {
    let known =
        writ_domain::catalog::is_known(head.aggregate_type, head.event_type, head.event_version);
    known
        .then(|| payload.decode())
        .flatten()
        .ok_or_else(|| ApplyError::Unknown {
            aggregate_type: head.aggregate_type.to_owned(),
            event_type: head.event_type.to_owned(),
            event_version: head.event_version.to_owned(),
            position: head.position,
        })
}

/// The statements that bring the inline rows of `schema` up to date with
/// one event, for the statement replay (the committer coalesces a batch's
/// changes: [`crate::coalesce`]).
pub fn statements(schema: &str, event: &StoredEvent) -> Result<Vec<Statement>, ApplyError> {
    Ok(changes(event.into(), &&event.payload)?
        .iter()
        .map(|change| change.statement(schema))
        .collect())
}

/// What one event changes in the inline rows.
pub fn changes(head: EventHead<'_>, payload: &impl Payload) -> Result<Vec<Change>, ApplyError> {
    let id = head.aggregate_id;
    Ok(match head.aggregate_type {
        Client::TYPE => client(id, decode(head, payload)?),
        Account::TYPE => account(id, decode(head, payload)?),
        Consent::TYPE => consent(decode(head, payload)?),
        Grant::TYPE => grant(id, &head.cursor.to_string(), decode(head, payload)?),
        SigningKey::TYPE => signing_key(decode(head, payload)?),
        Session::TYPE => session(id, decode(head, payload)?),
        // Login outcomes, pushed requests and client assertions have no
        // inline row; decoding still rejects the unknown.
        _ => decode::<serde::de::IgnoredAny>(head, payload).map(|_| Vec::new())?,
    })
}

fn text(value: impl Into<String>) -> Option<String> {
    Some(value.into())
}

fn to(value: impl Into<String>) -> Assign {
    Assign::To(Some(value.into()))
}

fn client(id: &str, event: ClientEvent) -> Vec<Change> {
    let by_id = || vec![(client::client_id, id.to_owned())];
    match event {
        ClientEvent::ClientRegistered {
            settings,
            secret_hash,
            registered_at,
            ..
        } => {
            let at = timestamp(&registered_at);
            vec![Change::insert(
                &CLIENTS,
                vec![
                    (client::client_id, text(id)),
                    (client::name, text(settings.name.clone())),
                    (
                        client::settings,
                        text(serde_json::to_string(&settings).unwrap_or_default()),
                    ),
                    (client::secret_hash, secret_hash.map(|h| h.0)),
                    (client::status, text(ClientStatus::Active.as_str())),
                    (client::registered_at, text(at.clone())),
                    (client::updated_at, text(at)),
                ],
            )]
        }
        ClientEvent::ClientSecretRotated {
            secret_hash,
            rotated_at,
        } => vec![Change::update(
            &CLIENTS,
            vec![
                (client::secret_hash, to(secret_hash.0)),
                (client::updated_at, to(timestamp(&rotated_at))),
            ],
            by_id(),
        )],
        ClientEvent::ClientSettingsChanged {
            settings,
            changed_at,
        } => vec![Change::update(
            &CLIENTS,
            vec![
                (client::name, to(settings.name.clone())),
                (
                    client::settings,
                    to(serde_json::to_string(&settings).unwrap_or_default()),
                ),
                (client::updated_at, to(timestamp(&changed_at))),
            ],
            by_id(),
        )],
        // The registration access token is checked against the log itself.
        ClientEvent::RegistrationTokenRotated { .. } => Vec::new(),
        ClientEvent::ClientDisabled { disabled_at, .. } => vec![Change::update(
            &CLIENTS,
            vec![
                (client::status, to(ClientStatus::Disabled.as_str())),
                (client::updated_at, to(timestamp(&disabled_at))),
            ],
            by_id(),
        )],
    }
}

fn account(account_id: &str, event: AccountEvent) -> Vec<Change> {
    let status = |status: &str, at: &DateTime<Utc>, sub: &str| {
        Change::update(
            &ACCOUNTS,
            vec![
                (account::status, to(status)),
                (account::updated_at, to(timestamp(at))),
            ],
            vec![(account::sub, sub.to_owned())],
        )
    };
    match event {
        AccountEvent::AccountCreated {
            sub,
            username,
            email,
            name,
            password_hash,
            created_at,
        } => {
            let at = timestamp(&created_at);
            vec![
                Change::insert(
                    &ACCOUNTS,
                    vec![
                        (account::sub, text(sub.clone())),
                        (account::account_id, text(account_id)),
                        (account::username, text(username.0)),
                        (account::email, email.map(|e| e.0)),
                        (account::name, name.map(|n| n.0)),
                        (account::password_hash, text(password_hash.0)),
                        (account::status, text(AccountStatus::Active.as_str())),
                        (account::created_at, text(at.clone())),
                        (account::updated_at, text(at.clone())),
                        (account::credentials_changed_at, text(at)),
                    ],
                ),
                Change::Insert {
                    table: &USERNAMES,
                    values: vec![
                        (username::account_id, text(account_id)),
                        (username::sub, text(sub)),
                    ],
                    replace: Some(&[username::sub]),
                },
            ]
        }
        AccountEvent::PasswordChanged {
            sub,
            password_hash,
            changed_at,
        } => {
            // Grants created before this instant stop being active (R31).
            let at = timestamp(&changed_at);
            vec![Change::update(
                &ACCOUNTS,
                vec![
                    (account::password_hash, to(password_hash.0)),
                    (account::updated_at, to(at.clone())),
                    (account::credentials_changed_at, to(at)),
                ],
                vec![(account::sub, sub)],
            )]
        }
        AccountEvent::ClaimsUpdated {
            sub,
            email,
            name,
            updated_at,
        } => vec![Change::update(
            &ACCOUNTS,
            vec![
                (account::email, Assign::To(email.map(|e| e.0))),
                (account::name, Assign::To(name.map(|n| n.0))),
                (account::updated_at, to(timestamp(&updated_at))),
            ],
            vec![(account::sub, sub)],
        )],
        AccountEvent::AccountDisabled {
            sub, disabled_at, ..
        } => vec![status(AccountStatus::Disabled.as_str(), &disabled_at, &sub)],
        // Grants from before the account was enabled again stay dead: the
        // policy revokes them, and until it has, this instant says so. Its
        // browser sessions, all from before the disabling (nobody signs in
        // to a disabled account), end here: a session a stolen cookie
        // still names must not come back to life with the account.
        AccountEvent::AccountEnabled {
            sub, enabled_at, ..
        } => vec![
            Change::update(
                &ACCOUNTS,
                vec![
                    (account::status, to(AccountStatus::Active.as_str())),
                    (account::updated_at, to(timestamp(&enabled_at))),
                    (account::credentials_changed_at, to(timestamp(&enabled_at))),
                ],
                vec![(account::sub, sub.clone())],
            ),
            Change::update(
                &SESSIONS,
                vec![
                    (session::status, to(SessionStatus::Ended.as_str())),
                    (session::updated_at, to(timestamp(&enabled_at))),
                ],
                vec![
                    (session::sub, sub),
                    (session::status, SessionStatus::Live.as_str().to_owned()),
                ],
            ),
        ],
        AccountEvent::AccountForgotten { sub, forgotten_at } => vec![
            status(AccountStatus::Forgotten.as_str(), &forgotten_at, &sub),
            Change::Delete {
                table: &USERNAMES,
                filter: vec![
                    (username::account_id, account_id.to_owned()),
                    (username::sub, sub),
                ],
            },
        ],
    }
}

/// `withdrawn_at` survives a later grant: tokens of grants created before
/// the last withdrawal stay inactive (ADR 0012).
fn consent(event: ConsentEvent) -> Vec<Change> {
    let (sub, client_id) = event.subject_and_client();
    let upsert = |scopes: String, at: &DateTime<Utc>, replace: &'static [&'static str]| {
        let at = timestamp(at);
        Change::Insert {
            table: &CONSENTS,
            values: vec![
                (consent::sub, text(sub)),
                (consent::client_id, text(client_id)),
                (consent::scopes, text(scopes)),
                (consent::status, text(ConsentStatus::Active.as_str())),
                (consent::granted_at, text(at.clone())),
                (consent::updated_at, text(at)),
            ],
            replace: Some(replace),
        }
    };
    match &event {
        ConsentEvent::ConsentGranted {
            scopes, granted_at, ..
        } => vec![upsert(
            scopes.to_string(),
            granted_at,
            &[
                consent::scopes,
                consent::status,
                consent::granted_at,
                consent::updated_at,
            ],
        )],
        ConsentEvent::ConsentExtended {
            scopes,
            extended_at,
            ..
        } => vec![upsert(
            scopes.to_string(),
            extended_at,
            &[consent::scopes, consent::status, consent::updated_at],
        )],
        ConsentEvent::ConsentWithdrawn { withdrawn_at, .. } => {
            let at = timestamp(withdrawn_at);
            vec![Change::update(
                &CONSENTS,
                vec![
                    (consent::status, to(ConsentStatus::Withdrawn.as_str())),
                    (consent::withdrawn_at, to(at.clone())),
                    (consent::updated_at, to(at)),
                ],
                vec![
                    (consent::sub, sub.to_owned()),
                    (consent::client_id, client_id.to_owned()),
                ],
            )]
        }
    }
}

fn session(sid: &str, event: SessionEvent) -> Vec<Change> {
    let by_sid = || vec![(session::sid, sid.to_owned())];
    match event {
        SessionEvent::SessionStarted {
            sub,
            auth_time,
            expires_at,
        } => {
            let at = timestamp(&auth_time);
            vec![Change::insert(
                &SESSIONS,
                vec![
                    (session::sid, text(sid)),
                    (session::sub, text(sub)),
                    (session::auth_time, text(at.clone())),
                    (session::expires_at, text(timestamp(&expires_at))),
                    (session::status, text(SessionStatus::Live.as_str())),
                    (session::updated_at, text(at)),
                ],
            )]
        }
        SessionEvent::SessionRenewed {
            auth_time,
            expires_at,
        } => {
            let at = timestamp(&auth_time);
            vec![Change::update(
                &SESSIONS,
                vec![
                    (session::auth_time, to(at.clone())),
                    (session::expires_at, to(timestamp(&expires_at))),
                    (session::updated_at, to(at)),
                ],
                by_sid(),
            )]
        }
        SessionEvent::SessionEnded { ended_at, .. } => vec![Change::update(
            &SESSIONS,
            vec![
                (session::status, to(SessionStatus::Ended.as_str())),
                (session::updated_at, to(timestamp(&ended_at))),
            ],
            by_sid(),
        )],
    }
}

fn signing_key(event: SigningKeyEvent) -> Vec<Change> {
    let status = |kid: String, status: &str, at: &DateTime<Utc>| {
        Change::update(
            &SIGNING_KEYS,
            vec![
                (signing_key::status, to(status)),
                (signing_key::updated_at, to(timestamp(at))),
            ],
            vec![(signing_key::kid, kid)],
        )
    };
    match event {
        SigningKeyEvent::SigningKeyGenerated {
            kid,
            alg,
            public_jwk,
            generated_at,
        } => {
            let at = timestamp(&generated_at);
            vec![Change::insert(
                &SIGNING_KEYS,
                vec![
                    (signing_key::kid, text(kid)),
                    (signing_key::alg, text(alg)),
                    (signing_key::public_jwk, text(public_jwk.to_string())),
                    (signing_key::status, text(KeyStatus::Generated.as_str())),
                    (signing_key::generated_at, text(at.clone())),
                    (signing_key::updated_at, text(at)),
                ],
            )]
        }
        SigningKeyEvent::SigningKeyActivated { kid, activated_at } => {
            vec![status(kid, KeyStatus::Active.as_str(), &activated_at)]
        }
        SigningKeyEvent::SigningKeyRetired { kid, retired_at } => {
            vec![status(kid, KeyStatus::Retired.as_str(), &retired_at)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_chronos_rfc3339_with_microseconds() {
        let mut seconds: i64 = 0;
        let mut nanos: u32 = 0;
        for step in 0..20_000_i64 {
            // A walk over four centuries, odd offsets hitting every field.
            seconds = (seconds + 7_919_993 * step + 86_399) % 12_622_780_800;
            nanos = (nanos + 123_456_789) % 1_000_000_000;
            let time = DateTime::from_timestamp(seconds, nanos).unwrap_or_default();
            assert_eq!(
                timestamp(&time),
                time.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
        }
        for edge in [
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "1970-01-01T00:00:00.000001Z",
        ] {
            let time: DateTime<Utc> = edge.parse().unwrap_or_default();
            assert_eq!(
                timestamp(&time),
                time.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
        }
    }
}
