use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::values::Sealed;
use crate::EVENT_VERSION_1;

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum AccountEvent {
    AccountCreated {
        sub: String,
        username: Sealed,
        email: Option<Sealed>,
        name: Option<Sealed>,
        password_hash: Sealed,
        created_at: DateTime<Utc>,
    },
    PasswordChanged {
        sub: String,
        password_hash: Sealed,
        changed_at: DateTime<Utc>,
    },
    ClaimsUpdated {
        sub: String,
        email: Option<Sealed>,
        name: Option<Sealed>,
        updated_at: DateTime<Utc>,
    },
    AccountDisabled {
        sub: String,
        reason: String,
        disabled_at: DateTime<Utc>,
    },
    /// A disabled account may sign in again. Its grants from before the
    /// disabling stay revoked: only new ones are live.
    AccountEnabled {
        sub: String,
        reason: String,
        enabled_at: DateTime<Utc>,
    },
    /// The subject's data key was deleted; sealed fields are unreadable.
    AccountForgotten {
        sub: String,
        forgotten_at: DateTime<Utc>,
    },
}

impl AccountEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;

    pub fn sub(&self) -> &str {
        match self {
            Self::AccountCreated { sub, .. }
            | Self::PasswordChanged { sub, .. }
            | Self::ClaimsUpdated { sub, .. }
            | Self::AccountDisabled { sub, .. }
            | Self::AccountEnabled { sub, .. }
            | Self::AccountForgotten { sub, .. } => sub,
        }
    }
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}
