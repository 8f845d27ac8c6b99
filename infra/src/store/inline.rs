//! Inline read rows: the security-critical state (clients, accounts and
//! usernames, consents, grants, tokens, signing keys), written by the
//! committer in the events' own transaction, and by the rebuild with the
//! very same code. Each row comes from one aggregate's events; times come
//! from the events, never from the wall clock.

use chrono::{DateTime, SecondsFormat, Utc};
use cqrs_es::Aggregate;
use serde::de::DeserializeOwned;
use sqlx::SqliteConnection;
use writ_domain::account::{Account, AccountEvent};
use writ_domain::client::{Client, ClientEvent};
use writ_domain::consent::{Consent, ConsentEvent};
use writ_domain::grant::{Grant, GrantEvent, GrantKind};
use writ_domain::signing_key::{SigningKey, SigningKeyEvent};

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
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

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

/// Boxed so callers inside spawned tasks need not prove `Send` through
/// sqlx's higher-ranked `Executor` bounds (rust-lang/rust#102211).
pub fn apply<'a>(
    conn: &'a mut SqliteConnection,
    schema: &'a str,
    event: &'a StoredEvent,
) -> futures::future::BoxFuture<'a, Result<(), ApplyError>> {
    Box::pin(apply_unboxed(conn, schema, event))
}

async fn apply_unboxed(
    conn: &mut SqliteConnection,
    schema: &str,
    event: &StoredEvent,
) -> Result<(), ApplyError> {
    let id = event.aggregate_id.as_str();
    match event.aggregate_type.as_str() {
        Client::TYPE => client(conn, schema, id, decode(event)?).await,
        Account::TYPE => account(conn, schema, id, decode(event)?).await,
        Consent::TYPE => consent(conn, schema, decode(event)?).await,
        Grant::TYPE => grant(conn, schema, id, decode(event)?).await,
        SigningKey::TYPE => signing_key(conn, schema, decode(event)?).await,
        // Login outcomes have no inline row; decoding still rejects the unknown.
        _ => decode::<serde_json::Value>(event).map(drop),
    }
}

async fn exec(
    conn: &mut SqliteConnection,
    sql: &str,
    binds: &[Option<&str>],
) -> Result<(), ApplyError> {
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    query.execute(conn).await?;
    Ok(())
}

async fn client(
    conn: &mut SqliteConnection,
    s: &str,
    id: &str,
    event: ClientEvent,
) -> Result<(), ApplyError> {
    match event {
        ClientEvent::ClientRegistered {
            settings,
            secret_hash,
            registered_at,
            ..
        } => {
            let at = timestamp(&registered_at);
            let json = serde_json::to_string(&settings).unwrap_or_default();
            let sql = format!("INSERT INTO {s}.clients (client_id, name, settings, secret_hash, status, registered_at, updated_at) VALUES (?, ?, ?, ?, 'active', ?, ?)");
            let secret = secret_hash.as_ref().map(|h| h.0.as_str());
            exec(
                conn,
                &sql,
                &[
                    Some(id),
                    Some(&settings.name),
                    Some(&json),
                    secret,
                    Some(&at),
                    Some(&at),
                ],
            )
            .await
        }
        ClientEvent::ClientSecretRotated {
            secret_hash,
            rotated_at,
        } => {
            let sql = format!(
                "UPDATE {s}.clients SET secret_hash = ?, updated_at = ? WHERE client_id = ?"
            );
            exec(
                conn,
                &sql,
                &[
                    Some(&secret_hash.0),
                    Some(&timestamp(&rotated_at)),
                    Some(id),
                ],
            )
            .await
        }
        ClientEvent::ClientSettingsChanged {
            settings,
            changed_at,
        } => {
            let json = serde_json::to_string(&settings).unwrap_or_default();
            let sql = format!(
                "UPDATE {s}.clients SET name = ?, settings = ?, updated_at = ? WHERE client_id = ?"
            );
            exec(
                conn,
                &sql,
                &[
                    Some(&settings.name),
                    Some(&json),
                    Some(&timestamp(&changed_at)),
                    Some(id),
                ],
            )
            .await
        }
        ClientEvent::ClientDisabled { disabled_at, .. } => {
            let sql = format!(
                "UPDATE {s}.clients SET status = 'disabled', updated_at = ? WHERE client_id = ?"
            );
            exec(conn, &sql, &[Some(&timestamp(&disabled_at)), Some(id)]).await
        }
    }
}

async fn account(
    conn: &mut SqliteConnection,
    s: &str,
    account_id: &str,
    event: AccountEvent,
) -> Result<(), ApplyError> {
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
            let sql = format!("INSERT INTO {s}.accounts (sub, account_id, username, email, name, password_hash, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?)");
            let (email, name) = (email.map(|e| e.0), name.map(|n| n.0));
            exec(
                conn,
                &sql,
                &[
                    Some(&sub),
                    Some(account_id),
                    Some(&username.0),
                    email.as_deref(),
                    name.as_deref(),
                    Some(&password_hash.0),
                    Some(&at),
                    Some(&at),
                ],
            )
            .await?;
            let sql =
                format!("INSERT OR REPLACE INTO {s}.usernames (account_id, sub) VALUES (?, ?)");
            exec(conn, &sql, &[Some(account_id), Some(&sub)]).await
        }
        AccountEvent::PasswordChanged {
            sub,
            password_hash,
            changed_at,
        } => {
            let sql =
                format!("UPDATE {s}.accounts SET password_hash = ?, updated_at = ? WHERE sub = ?");
            exec(
                conn,
                &sql,
                &[
                    Some(&password_hash.0),
                    Some(&timestamp(&changed_at)),
                    Some(&sub),
                ],
            )
            .await
        }
        AccountEvent::ClaimsUpdated {
            sub,
            email,
            name,
            updated_at,
        } => {
            let sql = format!(
                "UPDATE {s}.accounts SET email = ?, name = ?, updated_at = ? WHERE sub = ?"
            );
            let (email, name) = (email.map(|e| e.0), name.map(|n| n.0));
            exec(
                conn,
                &sql,
                &[
                    email.as_deref(),
                    name.as_deref(),
                    Some(&timestamp(&updated_at)),
                    Some(&sub),
                ],
            )
            .await
        }
        AccountEvent::AccountDisabled {
            sub, disabled_at, ..
        } => {
            let sql = format!(
                "UPDATE {s}.accounts SET status = 'disabled', updated_at = ? WHERE sub = ?"
            );
            exec(conn, &sql, &[Some(&timestamp(&disabled_at)), Some(&sub)]).await
        }
        AccountEvent::AccountForgotten { sub, forgotten_at } => {
            let sql = format!(
                "UPDATE {s}.accounts SET status = 'forgotten', updated_at = ? WHERE sub = ?"
            );
            exec(conn, &sql, &[Some(&timestamp(&forgotten_at)), Some(&sub)]).await?;
            let sql = format!("DELETE FROM {s}.usernames WHERE account_id = ? AND sub = ?");
            exec(conn, &sql, &[Some(account_id), Some(&sub)]).await
        }
    }
}

async fn consent(
    conn: &mut SqliteConnection,
    s: &str,
    event: ConsentEvent,
) -> Result<(), ApplyError> {
    let (status, scopes, at) = match &event {
        ConsentEvent::ConsentGranted {
            scopes,
            granted_at: at,
            ..
        }
        | ConsentEvent::ConsentExtended {
            scopes,
            extended_at: at,
            ..
        } => ("active", scopes.to_string(), at),
        ConsentEvent::ConsentWithdrawn { withdrawn_at, .. } => {
            ("withdrawn", String::new(), withdrawn_at)
        }
    };
    let (sub, client_id) = event.subject_and_client();
    let sql = format!(
        "INSERT INTO {s}.consents (sub, client_id, scopes, status, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (sub, client_id) DO UPDATE SET
           scopes = CASE WHEN excluded.status = 'withdrawn' THEN consents.scopes ELSE excluded.scopes END,
           status = excluded.status, updated_at = excluded.updated_at"
    );
    exec(
        conn,
        &sql,
        &[
            Some(sub),
            Some(client_id),
            Some(&scopes),
            Some(status),
            Some(&timestamp(at)),
        ],
    )
    .await
}

fn kind_name(kind: GrantKind) -> &'static str {
    match kind {
        GrantKind::AuthorizationCode => "authorization_code",
        GrantKind::ClientCredentials => "client_credentials",
        GrantKind::Password => "password",
    }
}

async fn grant(
    conn: &mut SqliteConnection,
    s: &str,
    gid: &str,
    event: GrantEvent,
) -> Result<(), ApplyError> {
    let set_status = |status: &'static str| {
        format!("UPDATE {s}.grants SET status = '{status}', updated_at = ? WHERE gid = ?")
    };
    let extend = format!("UPDATE {s}.grants SET expires_at = max(expires_at, ?) WHERE gid = ?");
    let insert_token = format!("INSERT INTO {s}.tokens (token_key, kind, gid, jti, expires_at, status) VALUES (?, ?, ?, ?, ?, 'active')");
    match event {
        GrantEvent::CodeIssued {
            client_id,
            sub,
            scopes,
            code_hash,
            issued_at,
            expires_at,
            ..
        } => {
            let (at, until) = (timestamp(&issued_at), timestamp(&expires_at));
            let sql = format!("INSERT INTO {s}.grants (gid, kind, client_id, sub, scopes, status, created_at, updated_at, expires_at) VALUES (?, 'authorization_code', ?, ?, ?, 'pending', ?, ?, ?)");
            exec(
                conn,
                &sql,
                &[
                    Some(gid),
                    Some(&client_id),
                    Some(&sub),
                    Some(&scopes.to_string()),
                    Some(&at),
                    Some(&at),
                    Some(&until),
                ],
            )
            .await?;
            exec(
                conn,
                &insert_token,
                &[
                    Some(&code_hash.0),
                    Some("code"),
                    Some(gid),
                    None,
                    Some(&until),
                ],
            )
            .await
        }
        GrantEvent::CodeRedeemed { redeemed_at: at }
        | GrantEvent::CodeBurned { burned_at: at, .. } => {
            let status = if matches!(event, GrantEvent::CodeRedeemed { .. }) {
                "active"
            } else {
                "revoked"
            };
            exec(
                conn,
                &set_status(status),
                &[Some(&timestamp(&at)), Some(gid)],
            )
            .await?;
            let sql =
                format!("UPDATE {s}.tokens SET status = 'spent' WHERE gid = ? AND kind = 'code'");
            exec(conn, &sql, &[Some(gid)]).await
        }
        GrantEvent::CodeReplayDetected { .. } | GrantEvent::RefreshTokenReuseDetected { .. } => {
            Ok(())
        }
        GrantEvent::GrantStarted {
            kind,
            client_id,
            sub,
            scopes,
            started_at,
            ..
        } => {
            let at = timestamp(&started_at);
            let sql = format!("INSERT INTO {s}.grants (gid, kind, client_id, sub, scopes, status, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?)");
            exec(
                conn,
                &sql,
                &[
                    Some(gid),
                    Some(kind_name(kind)),
                    Some(&client_id),
                    sub.as_deref(),
                    Some(&scopes.to_string()),
                    Some(&at),
                    Some(&at),
                    Some(&at),
                ],
            )
            .await
        }
        GrantEvent::AccessTokenIssued {
            jti,
            token_hash,
            expires_at,
            ..
        } => {
            let until = timestamp(&expires_at);
            // JWTs are found by jti; opaque tokens by their hash.
            let key = token_hash
                .map(|h| h.0)
                .unwrap_or_else(|| format!("jti:{jti}"));
            exec(
                conn,
                &insert_token,
                &[
                    Some(&key),
                    Some("access"),
                    Some(gid),
                    Some(&jti),
                    Some(&until),
                ],
            )
            .await?;
            exec(conn, &extend, &[Some(&until), Some(gid)]).await
        }
        GrantEvent::RefreshTokenIssued {
            token_hash,
            idle_expires_at,
            family_expires_at,
            ..
        } => {
            exec(
                conn,
                &insert_token,
                &[
                    Some(&token_hash.0),
                    Some("refresh"),
                    Some(gid),
                    None,
                    Some(&timestamp(&idle_expires_at)),
                ],
            )
            .await?;
            exec(
                conn,
                &extend,
                &[Some(&timestamp(&family_expires_at)), Some(gid)],
            )
            .await
        }
        GrantEvent::RefreshTokenRotated {
            previous_hash,
            token_hash,
            idle_expires_at,
            ..
        } => {
            let sql = format!("UPDATE {s}.tokens SET status = 'rotated' WHERE token_key = ?");
            exec(conn, &sql, &[Some(&previous_hash.0)]).await?;
            exec(
                conn,
                &insert_token,
                &[
                    Some(&token_hash.0),
                    Some("refresh"),
                    Some(gid),
                    None,
                    Some(&timestamp(&idle_expires_at)),
                ],
            )
            .await
        }
        GrantEvent::AccessTokenRevoked { jti, .. } => {
            let sql = format!("UPDATE {s}.tokens SET status = 'revoked' WHERE gid = ? AND jti = ?");
            exec(conn, &sql, &[Some(gid), Some(&jti)]).await
        }
        GrantEvent::GrantRevoked { revoked_at, .. } => {
            exec(
                conn,
                &set_status("revoked"),
                &[Some(&timestamp(&revoked_at)), Some(gid)],
            )
            .await?;
            let sql = format!(
                "UPDATE {s}.tokens SET status = 'revoked' WHERE gid = ? AND status = 'active'"
            );
            exec(conn, &sql, &[Some(gid)]).await
        }
    }
}

async fn signing_key(
    conn: &mut SqliteConnection,
    s: &str,
    event: SigningKeyEvent,
) -> Result<(), ApplyError> {
    match event {
        SigningKeyEvent::SigningKeyGenerated {
            kid,
            alg,
            public_jwk,
            generated_at,
        } => {
            let at = timestamp(&generated_at);
            let sql = format!("INSERT INTO {s}.signing_keys (kid, alg, public_jwk, status, generated_at, updated_at) VALUES (?, ?, ?, 'generated', ?, ?)");
            exec(
                conn,
                &sql,
                &[
                    Some(&kid),
                    Some(&alg),
                    Some(&public_jwk.to_string()),
                    Some(&at),
                    Some(&at),
                ],
            )
            .await
        }
        SigningKeyEvent::SigningKeyActivated {
            kid,
            activated_at: at,
        } => key_status(conn, s, &kid, "active", &at).await,
        SigningKeyEvent::SigningKeyRetired {
            kid,
            retired_at: at,
        } => key_status(conn, s, &kid, "retired", &at).await,
    }
}

async fn key_status(
    conn: &mut SqliteConnection,
    s: &str,
    kid: &str,
    status: &str,
    at: &DateTime<Utc>,
) -> Result<(), ApplyError> {
    let sql = format!("UPDATE {s}.signing_keys SET status = ?, updated_at = ? WHERE kid = ?");
    exec(conn, &sql, &[Some(status), Some(&timestamp(at)), Some(kid)]).await
}
