//! A pushed authorization request (RFC 9126): the client sends its
//! authorization request straight to Writ, authenticated, and the browser
//! carries only a `request_uri` to `/authorize`. The stream id is the
//! SHA-256 of the reference inside that URI, so the log never holds a
//! usable `request_uri`. It is single use: the first `/authorize` that
//! presents it records `PushedRequestUsed`, and the store's head check
//! makes any other attempt on the same stream lose, in this process or
//! another.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Services, EVENT_VERSION_1};

#[cfg(test)]
mod tests;

/// The authorization request's parameters after the authorization
/// endpoint's own checks passed at push time; `/authorize` runs them again
/// against the client as it is then. Personal values (`login_hint`) arrive
/// here already sealed by the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationParameters {
    /// Single-valued parameters by name.
    pub single: BTreeMap<String, String>,
    /// RFC 8707 `resource`, which may repeat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum PushedRequestCommand {
    Push {
        client_id: String,
        parameters: AuthorizationParameters,
        /// How the client authenticated at the push (`client_secret_basic`, …).
        client_auth_method: String,
        ttl_secs: u64,
    },
    /// The browser presented the `request_uri` at `/authorize`.
    Use { client_id: String },
}

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum PushedRequestEvent {
    AuthorizationRequestPushed {
        client_id: String,
        parameters: AuthorizationParameters,
        client_auth_method: String,
        pushed_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    PushedRequestUsed {
        client_id: String,
        used_at: DateTime<Utc>,
    },
}

impl PushedRequestEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl DomainEvent for PushedRequestEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}

/// Every refusal records nothing. `/authorize` shows them all as one
/// page: a `request_uri` that cannot be used tells the browser no more.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PushedRequestError {
    #[error("this request_uri was already issued")]
    AlreadyPushed,
    #[error("no such request_uri")]
    Unknown,
    #[error("the request_uri belongs to another client")]
    OtherClient,
    #[error("the request_uri has expired")]
    Expired,
    #[error("the request_uri was already used")]
    AlreadyUsed,
    #[error("a pushed request lives at least one second")]
    ZeroLifetime,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushedRequestStatus {
    #[default]
    Absent,
    Waiting,
    Used,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PushedRequest {
    pub status: PushedRequestStatus,
    pub client_id: String,
    pub parameters: AuthorizationParameters,
    pub expires_at: Option<DateTime<Utc>>,
}

impl PushedRequest {
    fn decide(
        &self,
        command: PushedRequestCommand,
        now: DateTime<Utc>,
    ) -> Result<PushedRequestEvent, PushedRequestError> {
        match command {
            PushedRequestCommand::Push {
                client_id,
                parameters,
                client_auth_method,
                ttl_secs,
            } => {
                if self.status != PushedRequestStatus::Absent {
                    return Err(PushedRequestError::AlreadyPushed);
                }
                let ttl = i64::try_from(ttl_secs)
                    .ok()
                    .filter(|secs| *secs > 0)
                    .and_then(Duration::try_seconds)
                    .ok_or(PushedRequestError::ZeroLifetime)?;
                Ok(PushedRequestEvent::AuthorizationRequestPushed {
                    client_id,
                    parameters,
                    client_auth_method,
                    pushed_at: now,
                    expires_at: now + ttl,
                })
            }
            PushedRequestCommand::Use { client_id } => {
                match self.status {
                    PushedRequestStatus::Absent => return Err(PushedRequestError::Unknown),
                    PushedRequestStatus::Used => return Err(PushedRequestError::AlreadyUsed),
                    PushedRequestStatus::Waiting => {}
                }
                if self.client_id != client_id {
                    return Err(PushedRequestError::OtherClient);
                }
                if self.expires_at.is_none_or(|until| now >= until) {
                    return Err(PushedRequestError::Expired);
                }
                Ok(PushedRequestEvent::PushedRequestUsed {
                    client_id,
                    used_at: now,
                })
            }
        }
    }
}

impl Aggregate for PushedRequest {
    const TYPE: &'static str = "PushedRequest";
    type Command = PushedRequestCommand;
    type Event = PushedRequestEvent;
    type Error = PushedRequestError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = self.decide(command, services.now())?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PushedRequestEvent::AuthorizationRequestPushed {
                client_id,
                parameters,
                expires_at,
                ..
            } => {
                self.status = PushedRequestStatus::Waiting;
                self.client_id = client_id;
                self.parameters = parameters;
                self.expires_at = Some(expires_at);
            }
            PushedRequestEvent::PushedRequestUsed { .. } => {
                self.status = PushedRequestStatus::Used;
            }
        }
    }
}
