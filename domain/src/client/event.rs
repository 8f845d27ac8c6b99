use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::command::ClientSettings;
use crate::values::SecretHash;
use crate::EVENT_VERSION_1;

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum ClientEvent {
    ClientRegistered {
        client_id: String,
        settings: ClientSettings,
        secret_hash: Option<SecretHash>,
        registered_at: DateTime<Utc>,
        /// SHA-256 of the RFC 7592 registration access token, for clients
        /// registered through `/register`; absent otherwise and in events
        /// written before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registration_token_hash: Option<SecretHash>,
    },
    ClientSecretRotated {
        secret_hash: SecretHash,
        rotated_at: DateTime<Utc>,
    },
    ClientSettingsChanged {
        settings: ClientSettings,
        changed_at: DateTime<Utc>,
    },
    ClientDisabled {
        reason: String,
        disabled_at: DateTime<Utc>,
    },
    /// RFC 7592 §3: each read or update of a registration hands the client
    /// a new registration access token; the previous one stops working.
    RegistrationTokenRotated {
        token_hash: SecretHash,
        rotated_at: DateTime<Utc>,
    },
}

impl ClientEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl DomainEvent for ClientEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}
