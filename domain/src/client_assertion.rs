//! A client assertion (`private_key_jwt`, RFC 7523 §2.2) that authenticated
//! a request. One stream per (client, `jti`), so the store's head check
//! makes each assertion single use in every process (RFC 7523 §3, item 7);
//! the event also tells an auditor which key a client authenticated with.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Services, EVENT_VERSION_1};

#[derive(Debug, Clone)]
pub struct AcceptAssertion {
    pub client_id: String,
    pub jti: String,
    /// The JWS algorithm and the `kid` the assertion named, if any.
    pub alg: String,
    pub kid: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum ClientAssertionEvent {
    ClientAssertionAccepted {
        client_id: String,
        jti: String,
        alg: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kid: Option<String>,
        expires_at: DateTime<Utc>,
        accepted_at: DateTime<Utc>,
    },
}

impl ClientAssertionEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl DomainEvent for ClientAssertionEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientAssertionError {
    #[error("this client assertion was used before")]
    Replayed,
    #[error("this client assertion has expired")]
    Expired,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClientAssertion {
    pub accepted: bool,
}

impl ClientAssertion {
    /// The stream of one client's `jti`: hashed, so that any `jti` a
    /// client chooses makes a stream id of one length.
    pub fn stream_id(client_id: &str, jti: &str, hash: impl Fn(&[u8]) -> String) -> String {
        hash(format!("{client_id}\n{jti}").as_bytes())
    }
}

impl Aggregate for ClientAssertion {
    const TYPE: &'static str = "ClientAssertion";
    type Command = AcceptAssertion;
    type Event = ClientAssertionEvent;
    type Error = ClientAssertionError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        if self.accepted {
            return Err(ClientAssertionError::Replayed);
        }
        if command.expires_at <= now {
            return Err(ClientAssertionError::Expired);
        }
        let event = ClientAssertionEvent::ClientAssertionAccepted {
            client_id: command.client_id,
            jti: command.jti,
            alg: command.alg,
            kid: command.kid,
            expires_at: command.expires_at,
            accepted_at: now,
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, _event: Self::Event) {
        self.accepted = true;
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::services::fixtures::{services, t0};

    fn accept() -> AcceptAssertion {
        AcceptAssertion {
            client_id: "app".into(),
            jti: "j1".into(),
            alg: "ES256".into(),
            kid: Some("k1".into()),
            expires_at: t0() + Duration::seconds(60),
        }
    }

    fn accepted() -> ClientAssertionEvent {
        ClientAssertionEvent::ClientAssertionAccepted {
            client_id: "app".into(),
            jti: "j1".into(),
            alg: "ES256".into(),
            kid: Some("k1".into()),
            expires_at: t0() + Duration::seconds(60),
            accepted_at: t0(),
        }
    }

    #[test]
    fn an_assertion_is_accepted_once_and_only_while_it_lives() {
        TestFramework::<ClientAssertion>::with(services())
            .given_no_previous_events()
            .when(accept())
            .then_expect_events(vec![accepted()]);
        TestFramework::<ClientAssertion>::with(services())
            .given(vec![accepted()])
            .when(accept())
            .then_expect_error(ClientAssertionError::Replayed);
        TestFramework::<ClientAssertion>::with(services())
            .given_no_previous_events()
            .when(AcceptAssertion {
                expires_at: t0(),
                ..accept()
            })
            .then_expect_error(ClientAssertionError::Expired);
    }
}
