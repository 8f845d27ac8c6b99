//! A browser session: one person signed in through Writ's pages. Its stream
//! id is the SHA-256 of the session cookie, so the log never holds the
//! cookie itself. Signing in again in the same browser as the same person
//! renews the session (a fresh `auth_time`); logging out ends it, and the
//! API then revokes the grants issued in it.

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Services, EVENT_VERSION_1};

#[derive(Debug, Clone)]
pub enum SessionCommand {
    Start {
        sub: String,
        ttl_secs: u64,
    },
    /// A new sign-in in a live session of the same person (`prompt=login`,
    /// `max_age`).
    Renew {
        sub: String,
        ttl_secs: u64,
    },
    End {
        by: String,
        reason: String,
    },
}

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum SessionEvent {
    SessionStarted {
        sub: String,
        auth_time: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    SessionRenewed {
        auth_time: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    SessionEnded {
        by: String,
        reason: String,
        ended_at: DateTime<Utc>,
    },
}

impl SessionEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl DomainEvent for SessionEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    #[error("this session already exists")]
    AlreadyStarted,
    #[error("the session is not live")]
    NotLive,
    #[error("the session belongs to another person")]
    OtherSubject,
    #[error("a session lasts at least one second")]
    ZeroLifetime,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionStatus {
    #[default]
    Absent,
    Live,
    Ended,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Session {
    pub status: SessionStatus,
    pub sub: String,
    pub auth_time: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

fn lifetime(secs: u64) -> Result<Duration, SessionError> {
    i64::try_from(secs)
        .ok()
        .filter(|secs| *secs > 0)
        .and_then(Duration::try_seconds)
        .ok_or(SessionError::ZeroLifetime)
}

impl Session {
    fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.status == SessionStatus::Live && self.expires_at.is_some_and(|until| now < until)
    }
}

impl Aggregate for Session {
    const TYPE: &'static str = "Session";
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let event = match command {
            SessionCommand::Start { sub, ttl_secs } => {
                if self.status != SessionStatus::Absent {
                    return Err(SessionError::AlreadyStarted);
                }
                SessionEvent::SessionStarted {
                    sub,
                    auth_time: now,
                    expires_at: now + lifetime(ttl_secs)?,
                }
            }
            SessionCommand::Renew { sub, ttl_secs } => {
                if !self.is_live(now) {
                    return Err(SessionError::NotLive);
                }
                if self.sub != sub {
                    return Err(SessionError::OtherSubject);
                }
                SessionEvent::SessionRenewed {
                    auth_time: now,
                    expires_at: now + lifetime(ttl_secs)?,
                }
            }
            SessionCommand::End { by, reason } => {
                if self.status != SessionStatus::Live {
                    return Err(SessionError::NotLive);
                }
                SessionEvent::SessionEnded {
                    by,
                    reason,
                    ended_at: now,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SessionEvent::SessionStarted {
                sub,
                auth_time,
                expires_at,
            } => {
                self.status = SessionStatus::Live;
                self.sub = sub;
                self.auth_time = Some(auth_time);
                self.expires_at = Some(expires_at);
            }
            SessionEvent::SessionRenewed {
                auth_time,
                expires_at,
            } => {
                self.auth_time = Some(auth_time);
                self.expires_at = Some(expires_at);
            }
            SessionEvent::SessionEnded { .. } => self.status = SessionStatus::Ended,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::services::fixtures::{services, services_at, t0};

    fn started() -> SessionEvent {
        SessionEvent::SessionStarted {
            sub: "s1".into(),
            auth_time: t0(),
            expires_at: t0() + Duration::seconds(600),
        }
    }

    #[test]
    fn signing_in_starts_a_session_with_its_auth_time() {
        TestFramework::<Session>::with(services())
            .given_no_previous_events()
            .when(SessionCommand::Start {
                sub: "s1".into(),
                ttl_secs: 600,
            })
            .then_expect_events(vec![started()]);
    }

    #[test]
    fn signing_in_again_renews_the_auth_time() {
        let later = t0() + Duration::seconds(30);
        TestFramework::<Session>::with(services_at(later))
            .given(vec![started()])
            .when(SessionCommand::Renew {
                sub: "s1".into(),
                ttl_secs: 600,
            })
            .then_expect_events(vec![SessionEvent::SessionRenewed {
                auth_time: later,
                expires_at: later + Duration::seconds(600),
            }]);
    }

    #[test]
    fn another_person_cannot_renew_a_session() {
        TestFramework::<Session>::with(services())
            .given(vec![started()])
            .when(SessionCommand::Renew {
                sub: "s2".into(),
                ttl_secs: 600,
            })
            .then_expect_error(SessionError::OtherSubject);
    }

    #[test]
    fn an_expired_session_cannot_be_renewed() {
        TestFramework::<Session>::with(services_at(t0() + Duration::seconds(600)))
            .given(vec![started()])
            .when(SessionCommand::Renew {
                sub: "s1".into(),
                ttl_secs: 600,
            })
            .then_expect_error(SessionError::NotLive);
    }

    #[test]
    fn logging_out_ends_a_session_once() {
        let ended = SessionEvent::SessionEnded {
            by: "user:s1".into(),
            reason: "logout".into(),
            ended_at: t0(),
        };
        TestFramework::<Session>::with(services())
            .given(vec![started()])
            .when(SessionCommand::End {
                by: "user:s1".into(),
                reason: "logout".into(),
            })
            .then_expect_events(vec![ended.clone()]);
        TestFramework::<Session>::with(services())
            .given(vec![started(), ended])
            .when(SessionCommand::End {
                by: "user:s1".into(),
                reason: "logout".into(),
            })
            .then_expect_error(SessionError::NotLive);
    }

    #[test]
    fn a_zero_lifetime_is_refused() {
        TestFramework::<Session>::with(services())
            .given_no_previous_events()
            .when(SessionCommand::Start {
                sub: "s1".into(),
                ttl_secs: 0,
            })
            .then_expect_error(SessionError::ZeroLifetime);
    }
}
