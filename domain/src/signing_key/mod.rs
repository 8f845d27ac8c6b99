//! A signing key's public life: generated (public JWK only), activated,
//! retired. The private half lives in its own table, encrypted under the
//! key-encryption key, and never enters the log.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Services, EVENT_VERSION_1};

#[derive(Debug, Clone)]
pub enum SigningKeyCommand {
    Generate {
        kid: String,
        alg: String,
        public_jwk: serde_json::Value,
    },
    Activate,
    Retire,
}

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum SigningKeyEvent {
    SigningKeyGenerated {
        kid: String,
        alg: String,
        public_jwk: serde_json::Value,
        generated_at: DateTime<Utc>,
    },
    SigningKeyActivated {
        kid: String,
        activated_at: DateTime<Utc>,
    },
    SigningKeyRetired {
        kid: String,
        retired_at: DateTime<Utc>,
    },
}

impl SigningKeyEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl DomainEvent for SigningKeyEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SigningKeyError {
    #[error("a key with this id already exists")]
    AlreadyGenerated,
    #[error("no such key")]
    NotFound,
    #[error("the key is already active")]
    AlreadyActive,
    #[error("the key is retired")]
    Retired,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    #[default]
    Absent,
    Generated,
    Active,
    Retired,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SigningKey {
    pub kid: String,
    pub status: KeyStatus,
}

impl Aggregate for SigningKey {
    const TYPE: &'static str = "SigningKey";
    type Command = SigningKeyCommand;
    type Event = SigningKeyEvent;
    type Error = SigningKeyError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let kid = self.kid.clone();
        let event = match (command, self.status) {
            (
                SigningKeyCommand::Generate {
                    kid,
                    alg,
                    public_jwk,
                },
                KeyStatus::Absent,
            ) => SigningKeyEvent::SigningKeyGenerated {
                kid,
                alg,
                public_jwk,
                generated_at: now,
            },
            (SigningKeyCommand::Generate { .. }, _) => {
                return Err(SigningKeyError::AlreadyGenerated)
            }
            (_, KeyStatus::Absent) => return Err(SigningKeyError::NotFound),
            (_, KeyStatus::Retired) => return Err(SigningKeyError::Retired),
            (SigningKeyCommand::Activate, KeyStatus::Active) => {
                return Err(SigningKeyError::AlreadyActive)
            }
            (SigningKeyCommand::Activate, _) => SigningKeyEvent::SigningKeyActivated {
                kid,
                activated_at: now,
            },
            (SigningKeyCommand::Retire, _) => SigningKeyEvent::SigningKeyRetired {
                kid,
                retired_at: now,
            },
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SigningKeyEvent::SigningKeyGenerated { kid, .. } => {
                self.kid = kid;
                self.status = KeyStatus::Generated;
            }
            SigningKeyEvent::SigningKeyActivated { .. } => self.status = KeyStatus::Active,
            SigningKeyEvent::SigningKeyRetired { .. } => self.status = KeyStatus::Retired,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    use super::*;
    use crate::services::fixtures::{services, t0};

    type KeyTest = TestFramework<SigningKey>;

    fn generated() -> SigningKeyEvent {
        SigningKeyEvent::SigningKeyGenerated {
            kid: "k1".into(),
            alg: "ES256".into(),
            public_jwk: json!({"kty": "EC"}),
            generated_at: t0(),
        }
    }

    fn activated() -> SigningKeyEvent {
        SigningKeyEvent::SigningKeyActivated {
            kid: "k1".into(),
            activated_at: t0(),
        }
    }

    fn generate() -> SigningKeyCommand {
        SigningKeyCommand::Generate {
            kid: "k1".into(),
            alg: "ES256".into(),
            public_jwk: json!({"kty": "EC"}),
        }
    }

    #[test]
    fn generating_records_only_the_public_key() {
        KeyTest::with(services())
            .given_no_previous_events()
            .when(generate())
            .then_expect_events(vec![generated()]);
    }

    #[test]
    fn generating_an_existing_kid_is_refused() {
        KeyTest::with(services())
            .given(vec![generated()])
            .when(generate())
            .then_expect_error(SigningKeyError::AlreadyGenerated);
    }

    #[test]
    fn activating_a_generated_key_records_it() {
        KeyTest::with(services())
            .given(vec![generated()])
            .when(SigningKeyCommand::Activate)
            .then_expect_events(vec![activated()]);
    }

    #[test]
    fn activating_twice_is_refused() {
        KeyTest::with(services())
            .given(vec![generated(), activated()])
            .when(SigningKeyCommand::Activate)
            .then_expect_error(SigningKeyError::AlreadyActive);
    }

    #[test]
    fn an_unknown_key_cannot_be_retired() {
        KeyTest::with(services())
            .given_no_previous_events()
            .when(SigningKeyCommand::Retire)
            .then_expect_error(SigningKeyError::NotFound);
    }

    #[test]
    fn a_retired_key_cannot_be_activated() {
        KeyTest::with(services())
            .given(vec![
                generated(),
                SigningKeyEvent::SigningKeyRetired {
                    kid: "k1".into(),
                    retired_at: t0(),
                },
            ])
            .when(SigningKeyCommand::Activate)
            .then_expect_error(SigningKeyError::Retired);
    }

    #[test]
    fn retiring_an_active_key_records_it() {
        KeyTest::with(services())
            .given(vec![generated(), activated()])
            .when(SigningKeyCommand::Retire)
            .then_expect_events(vec![SigningKeyEvent::SigningKeyRetired {
                kid: "k1".into(),
                retired_at: t0(),
            }]);
    }
}
