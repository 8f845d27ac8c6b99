//! Login outcomes, one short stream per account per UTC day, so the
//! `Account` stream never grows with sign-in traffic. A failed login is a
//! recorded outcome, not an error.

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Services, EVENT_VERSION_1};

/// The stream id for an account's login outcomes on one day.
pub fn stream_id(account_id: &str, day: NaiveDate) -> String {
    format!("{account_id}/{day}")
}

#[derive(Debug, Clone)]
pub enum LoginCommand {
    RecordOutcome { sub: String, succeeded: bool },
}

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum LoginEvent {
    LoginSucceeded { sub: String, at: DateTime<Utc> },
    LoginFailed { sub: String, at: DateTime<Utc> },
}

impl LoginEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;

    pub fn sub(&self) -> &str {
        match self {
            Self::LoginSucceeded { sub, .. } | Self::LoginFailed { sub, .. } => sub,
        }
    }
}

impl DomainEvent for LoginEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoginError {
    #[error("login outcomes belong to one subject per stream")]
    WrongSubject,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LoginDay {
    pub sub: Option<String>,
    pub succeeded: u32,
    pub failed: u32,
}

impl Aggregate for LoginDay {
    const TYPE: &'static str = "LoginDay";
    type Command = LoginCommand;
    type Event = LoginEvent;
    type Error = LoginError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let LoginCommand::RecordOutcome { sub, succeeded } = command;
        if self.sub.as_ref().is_some_and(|known| *known != sub) {
            return Err(LoginError::WrongSubject);
        }
        let at = services.now();
        let event = if succeeded {
            LoginEvent::LoginSucceeded { sub, at }
        } else {
            LoginEvent::LoginFailed { sub, at }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.sub = Some(event.sub().to_owned());
        match event {
            LoginEvent::LoginSucceeded { .. } => self.succeeded += 1,
            LoginEvent::LoginFailed { .. } => self.failed += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::services::fixtures::{services, t0};

    #[test]
    fn a_failed_login_is_recorded_as_an_event() {
        TestFramework::<LoginDay>::with(services())
            .given_no_previous_events()
            .when(LoginCommand::RecordOutcome {
                sub: "s1".into(),
                succeeded: false,
            })
            .then_expect_events(vec![LoginEvent::LoginFailed {
                sub: "s1".into(),
                at: t0(),
            }]);
    }

    #[test]
    fn a_successful_login_is_recorded() {
        TestFramework::<LoginDay>::with(services())
            .given(vec![LoginEvent::LoginFailed {
                sub: "s1".into(),
                at: t0(),
            }])
            .when(LoginCommand::RecordOutcome {
                sub: "s1".into(),
                succeeded: true,
            })
            .then_expect_events(vec![LoginEvent::LoginSucceeded {
                sub: "s1".into(),
                at: t0(),
            }]);
    }

    #[test]
    fn another_subject_in_the_same_stream_is_refused() {
        TestFramework::<LoginDay>::with(services())
            .given(vec![LoginEvent::LoginFailed {
                sub: "s1".into(),
                at: t0(),
            }])
            .when(LoginCommand::RecordOutcome {
                sub: "s2".into(),
                succeeded: true,
            })
            .then_expect_error(LoginError::WrongSubject);
    }
}
