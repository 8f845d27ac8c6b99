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
use writ_domain::grant::{Grant, GrantEvent, GrantKind};
use writ_domain::session::{Session, SessionEvent};
use writ_domain::signing_key::{SigningKey, SigningKeyEvent};

use super::statement::Statement;
use super::StoredEvent;

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
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn decode<E: DeserializeOwned>(event: &StoredEvent) -> Result<E, ApplyError> {
    let known = writ_domain::catalog::is_known(
        &event.aggregate_type,
        &event.event_type,
        &event.event_version,
    );
    known
        .then(|| serde_json::from_value(event.payload.clone()).ok())
        .flatten()
        .ok_or_else(|| ApplyError::Unknown {
            aggregate_type: event.aggregate_type.clone(),
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            position: event.position,
        })
}

/// The statements that bring the inline rows of `schema` up to date with
/// one event. Pure: the committer and the rebuild execute them.
pub fn statements(schema: &str, event: &StoredEvent) -> Result<Vec<Statement>, ApplyError> {
    let id = event.aggregate_id.as_str();
    Ok(match event.aggregate_type.as_str() {
        Client::TYPE => client(schema, id, decode(event)?),
        Account::TYPE => account(schema, id, decode(event)?),
        Consent::TYPE => consent(schema, decode(event)?),
        Grant::TYPE => grant(schema, id, &event.cursor().to_string(), decode(event)?),
        SigningKey::TYPE => signing_key(schema, decode(event)?),
        Session::TYPE => session(schema, id, decode(event)?),
        // Login outcomes have no inline row; decoding still rejects the unknown.
        _ => decode::<serde_json::Value>(event).map(|_| Vec::new())?,
    })
}

fn client(s: &str, id: &str, event: ClientEvent) -> Vec<Statement> {
    let stamp = |sql: String, at: &DateTime<Utc>| Statement::new(sql).text(timestamp(at)).text(id);
    match event {
        ClientEvent::ClientRegistered {
            settings,
            secret_hash,
            registered_at,
            ..
        } => {
            let at = timestamp(&registered_at);
            vec![Statement::new(format!(
                "INSERT INTO {s}.clients (client_id, name, settings, secret_hash, status, registered_at, updated_at) VALUES ($1, $2, $3, $4, 'active', $5, $5)"
            ))
            .text(id)
            .text(settings.name.clone())
            .text(serde_json::to_string(&settings).unwrap_or_default())
            .opt(secret_hash.map(|h| h.0))
            .text(at)]
        }
        ClientEvent::ClientSecretRotated {
            secret_hash,
            rotated_at,
        } => vec![Statement::new(format!(
            "UPDATE {s}.clients SET secret_hash = $1, updated_at = $2 WHERE client_id = $3"
        ))
        .text(secret_hash.0)
        .text(timestamp(&rotated_at))
        .text(id)],
        ClientEvent::ClientSettingsChanged {
            settings,
            changed_at,
        } => vec![Statement::new(format!(
            "UPDATE {s}.clients SET name = $1, settings = $2, updated_at = $3 WHERE client_id = $4"
        ))
        .text(settings.name.clone())
        .text(serde_json::to_string(&settings).unwrap_or_default())
        .text(timestamp(&changed_at))
        .text(id)],
        ClientEvent::ClientDisabled { disabled_at, .. } => {
            vec![stamp(format!("UPDATE {s}.clients SET status = 'disabled', updated_at = $1 WHERE client_id = $2"), &disabled_at)]
        }
    }
}

fn account(s: &str, account_id: &str, event: AccountEvent) -> Vec<Statement> {
    let by_sub = |sql: String, at: &DateTime<Utc>, sub: &str| {
        Statement::new(sql).text(timestamp(at)).text(sub)
    };
    match event {
        AccountEvent::AccountCreated { sub, username, email, name, password_hash, created_at } => vec![
            Statement::new(format!(
                "INSERT INTO {s}.accounts (sub, account_id, username, email, name, password_hash, status, created_at, updated_at, credentials_changed_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7, $7)"
            ))
            .text(sub.clone())
            .text(account_id)
            .text(username.0)
            .opt(email.map(|e| e.0))
            .opt(name.map(|n| n.0))
            .text(password_hash.0)
            .text(timestamp(&created_at)),
            Statement::new(format!(
                "INSERT INTO {s}.usernames (account_id, sub) VALUES ($1, $2) ON CONFLICT (account_id) DO UPDATE SET sub = excluded.sub"
            ))
            .text(account_id)
            .text(sub),
        ],
        AccountEvent::PasswordChanged { sub, password_hash, changed_at } => vec![Statement::new(format!(
            // Grants created before this instant stop being active (R31).
            "UPDATE {s}.accounts SET password_hash = $1, updated_at = $2, credentials_changed_at = $2 WHERE sub = $3"
        ))
        .text(password_hash.0)
        .text(timestamp(&changed_at))
        .text(sub)],
        AccountEvent::ClaimsUpdated { sub, email, name, updated_at } => vec![Statement::new(format!(
            "UPDATE {s}.accounts SET email = $1, name = $2, updated_at = $3 WHERE sub = $4"
        ))
        .opt(email.map(|e| e.0))
        .opt(name.map(|n| n.0))
        .text(timestamp(&updated_at))
        .text(sub)],
        AccountEvent::AccountDisabled { sub, disabled_at, .. } => {
            vec![by_sub(format!("UPDATE {s}.accounts SET status = 'disabled', updated_at = $1 WHERE sub = $2"), &disabled_at, &sub)]
        }
        AccountEvent::AccountForgotten { sub, forgotten_at } => vec![
            by_sub(format!("UPDATE {s}.accounts SET status = 'forgotten', updated_at = $1 WHERE sub = $2"), &forgotten_at, &sub),
            Statement::new(format!("DELETE FROM {s}.usernames WHERE account_id = $1 AND sub = $2")).text(account_id).text(sub),
        ],
    }
}

/// `withdrawn_at` survives a later grant: tokens of grants created before
/// the last withdrawal stay inactive (ADR 0012).
fn consent(s: &str, event: ConsentEvent) -> Vec<Statement> {
    let (sub, client_id) = event.subject_and_client();
    let upsert = |scopes: String, at: &DateTime<Utc>, on_conflict: &str| {
        Statement::new(format!(
            "INSERT INTO {s}.consents (sub, client_id, scopes, status, granted_at, updated_at) VALUES ($1, $2, $3, 'active', $4, $4)
             ON CONFLICT (sub, client_id) DO UPDATE SET {on_conflict}"
        ))
        .text(sub)
        .text(client_id)
        .text(scopes)
        .text(timestamp(at))
    };
    match &event {
        ConsentEvent::ConsentGranted {
            scopes, granted_at, ..
        } => vec![upsert(
            scopes.to_string(),
            granted_at,
            "scopes = excluded.scopes, status = 'active', granted_at = excluded.granted_at, updated_at = excluded.updated_at",
        )],
        ConsentEvent::ConsentExtended {
            scopes,
            extended_at,
            ..
        } => vec![upsert(
            scopes.to_string(),
            extended_at,
            "scopes = excluded.scopes, status = 'active', updated_at = excluded.updated_at",
        )],
        ConsentEvent::ConsentWithdrawn { withdrawn_at, .. } => vec![Statement::new(format!(
            "UPDATE {s}.consents SET status = 'withdrawn', withdrawn_at = $1, updated_at = $1 WHERE sub = $2 AND client_id = $3"
        ))
        .text(timestamp(withdrawn_at))
        .text(sub)
        .text(client_id)],
    }
}

fn session(s: &str, sid: &str, event: SessionEvent) -> Vec<Statement> {
    match event {
        SessionEvent::SessionStarted {
            sub,
            auth_time,
            expires_at,
        } => vec![Statement::new(format!(
            "INSERT INTO {s}.sessions (sid, sub, auth_time, expires_at, status, updated_at) VALUES ($1, $2, $3, $4, 'live', $3)"
        ))
        .text(sid)
        .text(sub)
        .text(timestamp(&auth_time))
        .text(timestamp(&expires_at))],
        SessionEvent::SessionRenewed {
            auth_time,
            expires_at,
        } => vec![Statement::new(format!(
            "UPDATE {s}.sessions SET auth_time = $1, expires_at = $2, updated_at = $1 WHERE sid = $3"
        ))
        .text(timestamp(&auth_time))
        .text(timestamp(&expires_at))
        .text(sid)],
        SessionEvent::SessionEnded { ended_at, .. } => vec![Statement::new(format!(
            "UPDATE {s}.sessions SET status = 'ended', updated_at = $1 WHERE sid = $2"
        ))
        .text(timestamp(&ended_at))
        .text(sid)],
    }
}

fn kind_name(kind: GrantKind) -> &'static str {
    match kind {
        GrantKind::AuthorizationCode => "authorization_code",
        GrantKind::ClientCredentials => "client_credentials",
        GrantKind::Password => "password",
    }
}

/// Every grant event moves the grant's `cursor`: an introspection answer
/// reports it as `writ_cursor`, the log position the answer reflects.
fn grant(s: &str, gid: &str, cursor: &str, event: GrantEvent) -> Vec<Statement> {
    let set_status = |status: &str, at: &DateTime<Utc>| {
        Statement::new(format!(
            "UPDATE {s}.grants SET status = '{status}', updated_at = $1 WHERE gid = $2"
        ))
        .text(timestamp(at))
        .text(gid)
    };
    let touch = Statement::new(format!("UPDATE {s}.grants SET cursor = $1 WHERE gid = $2"))
        .text(cursor)
        .text(gid);
    // Portable max(): SQLite's two-argument max() is GREATEST() elsewhere.
    let extend = |until: &str| {
        Statement::new(format!(
            "UPDATE {s}.grants SET expires_at = CASE WHEN expires_at < $1 THEN $1 ELSE expires_at END, cursor = $2 WHERE gid = $3"
        ))
        .text(until)
        .text(cursor)
        .text(gid)
    };
    let token = |key: String,
                 kind: &str,
                 jti: Option<String>,
                 scopes: Option<String>,
                 at: &str,
                 until: &str| {
        Statement::new(format!(
            "INSERT INTO {s}.tokens (token_key, kind, gid, jti, scopes, issued_at, expires_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active')"
        ))
        .text(key)
        .text(kind)
        .text(gid)
        .opt(jti)
        .opt(scopes)
        .text(at)
        .text(until)
    };
    let new_grant = |kind: &str,
                     client_id: String,
                     sub: Option<String>,
                     scopes: String,
                     audience: &[String],
                     status: &str,
                     at: &str,
                     until: &str,
                     sid: Option<String>| {
        Statement::new(format!(
            "INSERT INTO {s}.grants (gid, kind, client_id, sub, scopes, audience, status, created_at, updated_at, expires_at, cursor, sid) VALUES ($1, $2, $3, $4, $5, $6, '{status}', $7, $7, $8, $9, $10)"
        ))
        .text(gid)
        .text(kind)
        .text(client_id)
        .opt(sub)
        .text(scopes)
        .text(serde_json::to_string(audience).unwrap_or_default())
        .text(at)
        .text(until)
        .text(cursor)
        .opt(sid)
    };
    // Creations and extensions set the cursor themselves.
    let sets_cursor = matches!(
        event,
        GrantEvent::CodeIssued { .. }
            | GrantEvent::GrantStarted { .. }
            | GrantEvent::AccessTokenIssued { .. }
            | GrantEvent::RefreshTokenIssued { .. }
    );
    let mut statements = match event {
        GrantEvent::CodeIssued {
            client_id,
            sub,
            scopes,
            audience,
            code_hash,
            issued_at,
            expires_at,
            sid,
            ..
        } => {
            let (at, until) = (timestamp(&issued_at), timestamp(&expires_at));
            vec![
                new_grant(
                    "authorization_code",
                    client_id,
                    Some(sub),
                    scopes.to_string(),
                    &audience,
                    "pending",
                    &at,
                    &until,
                    sid,
                ),
                token(code_hash.0, "code", None, None, &at, &until),
            ]
        }
        GrantEvent::CodeRedeemed { redeemed_at: at } => vec![
            set_status("active", &at),
            Statement::new(format!(
                "UPDATE {s}.tokens SET status = 'spent' WHERE gid = $1 AND kind = 'code'"
            ))
            .text(gid),
        ],
        GrantEvent::CodeBurned { burned_at: at, .. } => vec![
            set_status("revoked", &at),
            Statement::new(format!(
                "UPDATE {s}.tokens SET status = 'spent' WHERE gid = $1 AND kind = 'code'"
            ))
            .text(gid),
        ],
        GrantEvent::CodeReplayDetected { .. } | GrantEvent::RefreshTokenReuseDetected { .. } => {
            Vec::new()
        }
        GrantEvent::GrantStarted {
            kind,
            client_id,
            sub,
            scopes,
            audience,
            started_at,
            ..
        } => {
            let at = timestamp(&started_at);
            vec![new_grant(
                kind_name(kind),
                client_id,
                sub,
                scopes.to_string(),
                &audience,
                "active",
                &at,
                &at,
                None,
            )]
        }
        GrantEvent::AccessTokenIssued {
            jti,
            token_hash,
            scopes,
            issued_at,
            expires_at,
        } => {
            let until = timestamp(&expires_at);
            // JWTs are found by jti; opaque tokens by their hash.
            let key = token_hash
                .map(|h| h.0)
                .unwrap_or_else(|| format!("jti:{jti}"));
            vec![
                token(
                    key,
                    "access",
                    Some(jti),
                    Some(scopes.to_string()),
                    &timestamp(&issued_at),
                    &until,
                ),
                extend(&until),
            ]
        }
        GrantEvent::RefreshTokenIssued {
            token_hash,
            issued_at,
            idle_expires_at,
            family_expires_at,
        } => vec![
            token(
                token_hash.0,
                "refresh",
                None,
                None,
                &timestamp(&issued_at),
                &timestamp(&idle_expires_at),
            ),
            extend(&timestamp(&family_expires_at)),
        ],
        GrantEvent::RefreshTokenRotated {
            previous_hash,
            token_hash,
            rotated_at,
            idle_expires_at,
        } => vec![
            Statement::new(format!(
                "UPDATE {s}.tokens SET status = 'rotated' WHERE token_key = $1"
            ))
            .text(previous_hash.0),
            token(
                token_hash.0,
                "refresh",
                None,
                None,
                &timestamp(&rotated_at),
                &timestamp(&idle_expires_at),
            ),
        ],
        GrantEvent::AccessTokenRevoked { jti, .. } => vec![Statement::new(format!(
            "UPDATE {s}.tokens SET status = 'revoked' WHERE gid = $1 AND jti = $2"
        ))
        .text(gid)
        .text(jti)],
        GrantEvent::GrantRevoked { revoked_at, .. } => vec![
            set_status("revoked", &revoked_at),
            Statement::new(format!(
                "UPDATE {s}.tokens SET status = 'revoked' WHERE gid = $1 AND status = 'active'"
            ))
            .text(gid),
        ],
    };
    if !sets_cursor {
        statements.push(touch);
    }
    statements
}

fn signing_key(s: &str, event: SigningKeyEvent) -> Vec<Statement> {
    let status = |kid: String, status: &str, at: &DateTime<Utc>| {
        Statement::new(format!(
            "UPDATE {s}.signing_keys SET status = $1, updated_at = $2 WHERE kid = $3"
        ))
        .text(status)
        .text(timestamp(at))
        .text(kid)
    };
    match event {
        SigningKeyEvent::SigningKeyGenerated { kid, alg, public_jwk, generated_at } => vec![Statement::new(format!(
            "INSERT INTO {s}.signing_keys (kid, alg, public_jwk, status, generated_at, updated_at) VALUES ($1, $2, $3, 'generated', $4, $4)"
        ))
        .text(kid)
        .text(alg)
        .text(public_jwk.to_string())
        .text(timestamp(&generated_at))],
        SigningKeyEvent::SigningKeyActivated { kid, activated_at } => vec![status(kid, "active", &activated_at)],
        SigningKeyEvent::SigningKeyRetired { kid, retired_at } => vec![status(kid, "retired", &retired_at)],
    }
}
