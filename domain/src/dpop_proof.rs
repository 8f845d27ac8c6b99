//! A DPoP proof (RFC 9449 §4) that Writ accepted at one of its endpoints.
//! One stream per (key, `jti`), so the store's head check refuses a replay
//! in every process (§11.1); the event also tells an auditor which key
//! proved possession where, and for which client.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Services, EVENT_VERSION_1};

#[derive(Debug, Clone)]
pub struct AcceptProof {
    /// The key's RFC 7638 thumbprint.
    pub jkt: String,
    pub jti: String,
    /// `htm` and `htu`: the request the proof was made for.
    pub method: String,
    pub url: String,
    /// The client the request was for: the authenticated one at the token
    /// and PAR endpoints, the token's at userinfo.
    pub client_id: String,
    /// Past this, the proof's `iat` is outside every window and a replay
    /// is refused by time alone.
    pub expires_at: DateTime<Utc>,
}

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum DpopProofEvent {
    DpopProofAccepted {
        jkt: String,
        jti: String,
        method: String,
        url: String,
        client_id: String,
        expires_at: DateTime<Utc>,
        accepted_at: DateTime<Utc>,
    },
}

impl DpopProofEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl DomainEvent for DpopProofEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DpopProofError {
    #[error("this DPoP proof was used before")]
    Replayed,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DpopProof {
    pub accepted: bool,
}

impl DpopProof {
    /// The stream of one key's `jti`: hashed, so that any `jti` a client
    /// chooses makes a stream id of one length.
    pub fn stream_id(jkt: &str, jti: &str, hash: impl Fn(&[u8]) -> String) -> String {
        hash(format!("{jkt}\n{jti}").as_bytes())
    }
}

impl Aggregate for DpopProof {
    const TYPE: &'static str = "DpopProof";
    type Command = AcceptProof;
    type Event = DpopProofEvent;
    type Error = DpopProofError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.accepted {
            return Err(DpopProofError::Replayed);
        }
        let event = DpopProofEvent::DpopProofAccepted {
            jkt: command.jkt,
            jti: command.jti,
            method: command.method,
            url: command.url,
            client_id: command.client_id,
            expires_at: command.expires_at,
            accepted_at: services.now(),
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

    fn accept() -> AcceptProof {
        AcceptProof {
            jkt: "key".into(),
            jti: "p1".into(),
            method: "POST".into(),
            url: "https://writ.example/token".into(),
            client_id: "app".into(),
            expires_at: t0() + Duration::seconds(65),
        }
    }

    #[test]
    fn a_proof_is_accepted_once() {
        let accepted = DpopProofEvent::DpopProofAccepted {
            jkt: "key".into(),
            jti: "p1".into(),
            method: "POST".into(),
            url: "https://writ.example/token".into(),
            client_id: "app".into(),
            expires_at: t0() + Duration::seconds(65),
            accepted_at: t0(),
        };
        TestFramework::<DpopProof>::with(services())
            .given_no_previous_events()
            .when(accept())
            .then_expect_events(vec![accepted.clone()]);
        TestFramework::<DpopProof>::with(services())
            .given(vec![accepted])
            .when(accept())
            .then_expect_error(DpopProofError::Replayed);
    }
}
