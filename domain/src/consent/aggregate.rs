use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::values::ScopeSet;
use crate::{Services, EVENT_VERSION_1};

pub fn stream_id(sub: &str, client_id: &str) -> String {
    format!("{sub}/{client_id}")
}

#[derive(Debug, Clone)]
pub enum ConsentCommand {
    Grant {
        sub: String,
        client_id: String,
        scopes: ScopeSet,
        /// The authorization request the consent was given in.
        request_id: String,
    },
    Withdraw {
        by: String,
        reason: String,
    },
}

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum ConsentEvent {
    ConsentGranted {
        sub: String,
        client_id: String,
        scopes: ScopeSet,
        request_id: String,
        granted_at: DateTime<Utc>,
    },
    /// `scopes` is the whole set after the extension.
    ConsentExtended {
        sub: String,
        client_id: String,
        scopes: ScopeSet,
        request_id: String,
        extended_at: DateTime<Utc>,
    },
    ConsentWithdrawn {
        sub: String,
        client_id: String,
        by: String,
        reason: String,
        withdrawn_at: DateTime<Utc>,
    },
}

impl ConsentEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;

    pub fn subject_and_client(&self) -> (&str, &str) {
        match self {
            Self::ConsentGranted { sub, client_id, .. }
            | Self::ConsentExtended { sub, client_id, .. }
            | Self::ConsentWithdrawn { sub, client_id, .. } => (sub, client_id),
        }
    }
}

impl DomainEvent for ConsentEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConsentError {
    #[error("the consent already covers these scopes")]
    AlreadyCovered,
    #[error("there is no active consent to withdraw")]
    NotActive,
    #[error("a consent needs at least one scope")]
    NoScopes,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Consent {
    pub sub: String,
    pub client_id: String,
    /// `None` when never granted or withdrawn.
    pub scopes: Option<ScopeSet>,
}

impl Aggregate for Consent {
    const TYPE: &'static str = "Consent";
    type Command = ConsentCommand;
    type Event = ConsentEvent;
    type Error = ConsentError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let event = match command {
            ConsentCommand::Grant {
                sub,
                client_id,
                scopes,
                request_id,
            } => {
                if scopes.is_empty() {
                    return Err(ConsentError::NoScopes);
                }
                match &self.scopes {
                    None => ConsentEvent::ConsentGranted {
                        sub,
                        client_id,
                        scopes,
                        request_id,
                        granted_at: now,
                    },
                    Some(held) if scopes.is_subset(held) => {
                        return Err(ConsentError::AlreadyCovered)
                    }
                    Some(held) => ConsentEvent::ConsentExtended {
                        sub,
                        client_id,
                        scopes: held.union(&scopes),
                        request_id,
                        extended_at: now,
                    },
                }
            }
            ConsentCommand::Withdraw { by, reason } => {
                if self.scopes.is_none() {
                    return Err(ConsentError::NotActive);
                }
                ConsentEvent::ConsentWithdrawn {
                    sub: self.sub.clone(),
                    client_id: self.client_id.clone(),
                    by,
                    reason,
                    withdrawn_at: now,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ConsentEvent::ConsentGranted {
                sub,
                client_id,
                scopes,
                ..
            }
            | ConsentEvent::ConsentExtended {
                sub,
                client_id,
                scopes,
                ..
            } => {
                self.sub = sub;
                self.client_id = client_id;
                self.scopes = Some(scopes);
            }
            ConsentEvent::ConsentWithdrawn { .. } => self.scopes = None,
        }
    }
}
