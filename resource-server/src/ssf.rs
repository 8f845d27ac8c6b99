//! A Shared Signals receiver (OpenID SSF 1.0): Writ's SETs, pushed to this
//! API (RFC 8935, [`push_router`]) or polled from Writ (RFC 8936,
//! [`follow_poll`]), verified against Writ's JWKS and applied to the same
//! deny-list the Kafka and server-sent-event feeds fill:
//!
//! - CAEP `session-revoked` denies the grant (`sub_id.session`, the `gid`
//!   in Writ's tokens);
//! - CAEP `credential-change` and RISC `account-disabled` and
//!   `account-purged` deny the subject's tokens issued up to the event;
//! - anything else (verification, `account-enabled`, event types this
//!   version does not know) is accepted and changes nothing.
//!
//! Writ signals grants, not single access tokens: an access token revoked
//! on its own (RFC 7009) is not signalled, and reaches this API through
//! the other sources only.
//!
//! The receiver is a Writ client with the `ssf.manage` scope; its stream is
//! created with [`SsfClient::create_stream`]. SETs do not say when the
//! tokens they revoke expire, so each revocation is kept for
//! [`Config::signal_memory`](crate::Config::signal_memory).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use writ_protocol::revocation::{Revocation, RevocationType, SCHEMA_VERSION};

use crate::verify::ResourceServer;

pub use writ_protocol::signals::{
    ACCOUNT_DISABLED, ACCOUNT_PURGED, CREDENTIAL_CHANGE, SESSION_REVOKED, SET_TYPE,
};
use writ_protocol::signals::{PUSH, SCOPE};

/// Why a SET was refused, in RFC 8935 §2.4's (and RFC 8936 §2.4's) terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetError {
    pub err: &'static str,
    pub description: &'static str,
}

impl SetError {
    fn new(err: &'static str, description: &'static str) -> Self {
        Self { err, description }
    }

    /// Whether the SET may verify later: its key is not (yet) in the JWKS
    /// this receiver holds, or the JWKS could not be fetched.
    pub fn may_pass_later(&self) -> bool {
        self.err == "invalid_key"
    }

    pub fn to_json(&self) -> Value {
        json!({"err": self.err, "description": self.description})
    }
}

/// Verifies Writ's SETs for one receiver and applies them.
#[derive(Clone)]
pub struct SsfReceiver {
    server: ResourceServer,
    /// The receiver's client id: every SET names it in `aud`.
    audience: String,
}

impl SsfReceiver {
    pub fn new(server: ResourceServer, receiver_client_id: impl Into<String>) -> Self {
        Self {
            server,
            audience: receiver_client_id.into(),
        }
    }

    /// Verifies one SET (RS256 by a key of Writ's JWKS, `typ`, `iss`,
    /// `aud`) and applies what it revokes.
    pub async fn accept(&self, set: &str) -> Result<(), SetError> {
        let verified = self
            .server
            .verify_signed(set.trim())
            .await
            .ok_or_else(|| SetError::new("invalid_key", "the SET does not verify"))?;
        if verified.header["typ"].as_str() != Some(SET_TYPE) {
            return Err(SetError::new("invalid_request", "not a secevent+jwt"));
        }
        let claims = verified.claims;
        if claims["iss"].as_str() != Some(self.server.config().issuer.as_str()) {
            return Err(SetError::new("invalid_issuer", "issued by someone else"));
        }
        let audience = &claims["aud"];
        let for_us = audience.as_str() == Some(&self.audience)
            || audience
                .as_array()
                .is_some_and(|all| all.iter().any(|aud| aud.as_str() == Some(&self.audience)));
        if !for_us {
            return Err(SetError::new(
                "invalid_audience",
                "meant for another receiver",
            ));
        }
        let Some(events) = claims["events"].as_object() else {
            return Err(SetError::new("invalid_request", "the SET has no events"));
        };
        for (event_type, body) in events {
            if let Some(revocation) = revocation(&claims, event_type, body, self.memory()) {
                self.server.apply(&revocation);
            }
        }
        Ok(())
    }

    fn memory(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.server.config().signal_memory)
            .unwrap_or(chrono::Duration::days(1))
    }
}

/// What a SET's event revokes, as the revocation stream would say it.
fn revocation(
    claims: &Value,
    event_type: &str,
    body: &Value,
    memory: chrono::Duration,
) -> Option<Revocation> {
    let iat = claims["iat"].as_i64()?;
    let at = body["event_timestamp"].as_i64().unwrap_or(iat);
    let revoked_at = DateTime::<Utc>::from_timestamp(at, 0)?;
    let sub_id = &claims["sub_id"];
    let user = match sub_id["format"].as_str() {
        Some("iss_sub") => sub_id,
        _ => &sub_id["user"],
    };
    let sub = user["sub"].as_str().map(str::to_owned);
    // The SET's jti is `<log cursor>.<stream id>`.
    let cursor = claims["jti"]
        .as_str()
        .and_then(|jti| jti.rsplit_once('.'))
        .map(|(cursor, _)| cursor.to_owned())
        .unwrap_or_default();
    let revocation = |kind, gid: Option<String>| Revocation {
        version: SCHEMA_VERSION,
        kind,
        jtis: Vec::new(),
        gid,
        client_id: None,
        sub: sub.clone(),
        revoked_at,
        expires_at: revoked_at + memory,
        reason: event_type.rsplit('/').next().unwrap_or_default().to_owned(),
        cursor: cursor.clone(),
    };
    match event_type {
        SESSION_REVOKED => {
            let gid = sub_id["session"]["id"].as_str()?.to_owned();
            Some(revocation(RevocationType::GrantRevoked, Some(gid)))
        }
        // A credential added (`create`) takes nothing away; Writ sends
        // `update` for a password set.
        CREDENTIAL_CHANGE if body["change_type"].as_str() == Some("create") => None,
        CREDENTIAL_CHANGE | ACCOUNT_DISABLED | ACCOUNT_PURGED => {
            sub.as_ref()?;
            Some(revocation(RevocationType::AccountDisabled, None))
        }
        _ => None,
    }
}

/// Writ's stream management, with the receiver's client credentials
/// (client credentials grant, `ssf.manage`).
#[derive(Clone)]
pub struct SsfClient {
    http: reqwest::Client,
    /// Writ's token endpoint.
    pub token_url: String,
    /// Writ's command API, which serves `/ssf/…`.
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
}

impl SsfClient {
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        let base_url: String = base_url.into();
        Self {
            http: reqwest::Client::builder()
                // Writ holds a poll for up to a minute (`--ssf-long-poll`).
                .timeout(Duration::from_secs(90))
                .build()
                .unwrap_or_default(),
            token_url: format!("{}/token", base_url.trim_end_matches('/')),
            base_url,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    /// A fresh access token with `ssf.manage`.
    pub async fn token(&self) -> Result<String, reqwest::Error> {
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
        }
        let token: Token = self
            .http
            .post(&self.token_url)
            .header(
                reqwest::header::AUTHORIZATION,
                crate::basic::authorization(&self.client_id, &self.client_secret),
            )
            .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(token.access_token)
    }

    /// Creates a stream (SSF §8.1.1.1) for the events this module applies
    /// and returns its id: `delivery` is `None` for a poll stream, or the
    /// push endpoint and the `Authorization` value Writ must send to it.
    pub async fn create_stream(
        &self,
        push: Option<(&str, &str)>,
    ) -> Result<String, reqwest::Error> {
        let mut body = json!({
            "events_requested": [SESSION_REVOKED, CREDENTIAL_CHANGE, ACCOUNT_DISABLED, ACCOUNT_PURGED],
        });
        if let Some((endpoint_url, authorization_header)) = push {
            body["delivery"] = json!({
                "method": PUSH,
                "endpoint_url": endpoint_url,
                "authorization_header": authorization_header,
            });
        }
        let created: Value = self
            .http
            .post(self.url("/ssf/streams"))
            .bearer_auth(self.token().await?)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(created["stream_id"].as_str().unwrap_or_default().to_owned())
    }
}

mod delivery;

pub use delivery::follow_poll;
#[cfg(feature = "axum")]
pub use delivery::push_router;

#[cfg(all(test, feature = "axum"))]
mod tests;
