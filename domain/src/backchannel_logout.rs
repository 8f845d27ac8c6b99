//! A back-channel logout (OpenID Connect Back-Channel Logout 1.0): one
//! relying party told that a browser session it received an id_token in
//! has ended. The stream is the outbox entry: scheduled when the session
//! ends (or its account is disabled), then each delivery attempt's outcome,
//! until the relying party accepts the logout token or Writ gives up.
//! Its id is derived from the session and the client, so a session ending
//! and its account being disabled tell each relying party once.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Services, EVENT_VERSION_1};

#[derive(Debug, Clone)]
pub enum BackchannelLogoutCommand {
    Schedule {
        client_id: String,
        sub: String,
        sid: String,
        /// The client's `backchannel_logout_uri` when the session ended.
        uri: String,
        /// Why the session ended (`logout`, `account_disabled`, …).
        reason: String,
        retry_for_secs: u64,
    },
    /// One attempt's outcome; `attempt` counts from one.
    Record { attempt: u32, outcome: Outcome },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        status: u16,
    },
    /// §2.8: the relying party refused the token itself (a 4xx but 408
    /// and 429), or no longer has a back channel: another try would be
    /// refused the same way.
    Rejected {
        reason: String,
    },
    /// A server error or no answer: tried again at `retry_at`, unless
    /// that is past the time to give up.
    Failed {
        reason: String,
        retry_at: DateTime<Utc>,
    },
}

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum BackchannelLogoutEvent {
    BackchannelLogoutScheduled {
        client_id: String,
        sub: String,
        sid: String,
        uri: String,
        reason: String,
        scheduled_at: DateTime<Utc>,
        give_up_at: DateTime<Utc>,
    },
    BackchannelLogoutAttemptFailed {
        attempt: u32,
        reason: String,
        failed_at: DateTime<Utc>,
        retry_at: DateTime<Utc>,
    },
    BackchannelLogoutDelivered {
        attempt: u32,
        status: u16,
        delivered_at: DateTime<Utc>,
    },
    /// The relying party refused the token, or no longer has a back
    /// channel to send it to; not tried again.
    BackchannelLogoutRejected {
        attempt: u32,
        reason: String,
        rejected_at: DateTime<Utc>,
    },
    /// Every attempt until `give_up_at` failed; the last one's reason.
    BackchannelLogoutAbandoned {
        attempts: u32,
        reason: String,
        abandoned_at: DateTime<Utc>,
    },
}

impl BackchannelLogoutEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl DomainEvent for BackchannelLogoutEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BackchannelLogoutError {
    #[error("this relying party is already being told of this session's end")]
    AlreadyScheduled,
    #[error("no such logout")]
    NotScheduled,
    #[error("this logout is already delivered or abandoned")]
    Finished,
    #[error("another attempt was recorded first")]
    StaleAttempt,
    #[error("a logout is retried for between one second and a week")]
    BadRetryWindow,
}

/// Where one relying party's logout stands.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BackchannelLogout {
    pub scheduled: Option<Scheduled>,
    pub attempts: u32,
    pub finished: bool,
    pub retry_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scheduled {
    pub client_id: String,
    pub sub: String,
    pub sid: String,
    pub uri: String,
    pub give_up_at: DateTime<Utc>,
}

impl BackchannelLogout {
    /// One stream per (session, client): hashed, so any ids make a stream
    /// id of one length, and the same pair always the same stream.
    pub fn stream_id(sid: &str, client_id: &str, hash: impl Fn(&[u8]) -> String) -> String {
        hash(format!("writ backchannel logout v1\n{sid}\n{client_id}").as_bytes())
    }

    fn decide(
        &self,
        command: BackchannelLogoutCommand,
        now: DateTime<Utc>,
    ) -> Result<BackchannelLogoutEvent, BackchannelLogoutError> {
        match command {
            BackchannelLogoutCommand::Schedule {
                client_id,
                sub,
                sid,
                uri,
                reason,
                retry_for_secs,
            } => {
                if self.scheduled.is_some() {
                    return Err(BackchannelLogoutError::AlreadyScheduled);
                }
                let window = i64::try_from(retry_for_secs)
                    .ok()
                    .filter(|secs| (1..=7 * 24 * 3600).contains(secs))
                    .and_then(chrono::Duration::try_seconds)
                    .ok_or(BackchannelLogoutError::BadRetryWindow)?;
                Ok(BackchannelLogoutEvent::BackchannelLogoutScheduled {
                    client_id,
                    sub,
                    sid,
                    uri,
                    reason,
                    scheduled_at: now,
                    give_up_at: now + window,
                })
            }
            BackchannelLogoutCommand::Record { attempt, outcome } => {
                let scheduled = self
                    .scheduled
                    .as_ref()
                    .ok_or(BackchannelLogoutError::NotScheduled)?;
                if self.finished {
                    return Err(BackchannelLogoutError::Finished);
                }
                if attempt != self.attempts + 1 {
                    return Err(BackchannelLogoutError::StaleAttempt);
                }
                Ok(match outcome {
                    Outcome::Delivered { status } => {
                        BackchannelLogoutEvent::BackchannelLogoutDelivered {
                            attempt,
                            status,
                            delivered_at: now,
                        }
                    }
                    Outcome::Rejected { reason } => {
                        BackchannelLogoutEvent::BackchannelLogoutRejected {
                            attempt,
                            reason,
                            rejected_at: now,
                        }
                    }
                    Outcome::Failed { reason, retry_at } if retry_at > scheduled.give_up_at => {
                        BackchannelLogoutEvent::BackchannelLogoutAbandoned {
                            attempts: attempt,
                            reason,
                            abandoned_at: now,
                        }
                    }
                    Outcome::Failed { reason, retry_at } => {
                        BackchannelLogoutEvent::BackchannelLogoutAttemptFailed {
                            attempt,
                            reason,
                            failed_at: now,
                            retry_at,
                        }
                    }
                })
            }
        }
    }
}

impl Aggregate for BackchannelLogout {
    const TYPE: &'static str = "BackchannelLogout";
    type Command = BackchannelLogoutCommand;
    type Event = BackchannelLogoutEvent;
    type Error = BackchannelLogoutError;
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
            BackchannelLogoutEvent::BackchannelLogoutScheduled {
                client_id,
                sub,
                sid,
                uri,
                scheduled_at,
                give_up_at,
                ..
            } => {
                self.scheduled = Some(Scheduled {
                    client_id,
                    sub,
                    sid,
                    uri,
                    give_up_at,
                });
                self.retry_at = Some(scheduled_at);
            }
            BackchannelLogoutEvent::BackchannelLogoutAttemptFailed {
                attempt, retry_at, ..
            } => {
                self.attempts = attempt;
                self.retry_at = Some(retry_at);
            }
            BackchannelLogoutEvent::BackchannelLogoutDelivered { attempt, .. }
            | BackchannelLogoutEvent::BackchannelLogoutRejected { attempt, .. }
            | BackchannelLogoutEvent::BackchannelLogoutAbandoned {
                attempts: attempt, ..
            } => {
                self.attempts = attempt;
                self.finished = true;
                self.retry_at = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::services::fixtures::{services, t0};

    type LogoutTest = TestFramework<BackchannelLogout>;

    fn scheduled() -> BackchannelLogoutEvent {
        BackchannelLogoutEvent::BackchannelLogoutScheduled {
            client_id: "rp".into(),
            sub: "s1".into(),
            sid: "sid".into(),
            uri: "https://rp.example/logout".into(),
            reason: "logout".into(),
            scheduled_at: t0(),
            give_up_at: t0() + Duration::seconds(60),
        }
    }

    fn failed(attempt: u32, retry_in: i64) -> BackchannelLogoutCommand {
        BackchannelLogoutCommand::Record {
            attempt,
            outcome: Outcome::Failed {
                reason: "HTTP 500".into(),
                retry_at: t0() + Duration::seconds(retry_in),
            },
        }
    }

    #[test]
    fn a_logout_is_scheduled_once_per_session_and_client() {
        let schedule = BackchannelLogoutCommand::Schedule {
            client_id: "rp".into(),
            sub: "s1".into(),
            sid: "sid".into(),
            uri: "https://rp.example/logout".into(),
            reason: "logout".into(),
            retry_for_secs: 60,
        };
        LogoutTest::with(services())
            .given_no_previous_events()
            .when(schedule.clone())
            .then_expect_events(vec![scheduled()]);
        LogoutTest::with(services())
            .given(vec![scheduled()])
            .when(schedule)
            .then_expect_error(BackchannelLogoutError::AlreadyScheduled);
    }

    #[test]
    fn failures_are_retried_until_the_window_closes_then_abandoned() {
        LogoutTest::with(services())
            .given(vec![scheduled()])
            .when(failed(1, 1))
            .then_expect_events(vec![
                BackchannelLogoutEvent::BackchannelLogoutAttemptFailed {
                    attempt: 1,
                    reason: "HTTP 500".into(),
                    failed_at: t0(),
                    retry_at: t0() + Duration::seconds(1),
                },
            ]);
        LogoutTest::with(services())
            .given(vec![scheduled()])
            .when(failed(1, 61))
            .then_expect_events(vec![BackchannelLogoutEvent::BackchannelLogoutAbandoned {
                attempts: 1,
                reason: "HTTP 500".into(),
                abandoned_at: t0(),
            }]);
    }

    #[test]
    fn attempts_are_recorded_in_order_and_not_after_the_end() {
        LogoutTest::with(services())
            .given(vec![scheduled()])
            .when(failed(2, 1))
            .then_expect_error(BackchannelLogoutError::StaleAttempt);
        let delivered = BackchannelLogoutEvent::BackchannelLogoutDelivered {
            attempt: 1,
            status: 200,
            delivered_at: t0(),
        };
        LogoutTest::with(services())
            .given(vec![scheduled()])
            .when(BackchannelLogoutCommand::Record {
                attempt: 1,
                outcome: Outcome::Delivered { status: 200 },
            })
            .then_expect_events(vec![delivered.clone()]);
        LogoutTest::with(services())
            .given(vec![scheduled(), delivered])
            .when(failed(2, 1))
            .then_expect_error(BackchannelLogoutError::Finished);
        LogoutTest::with(services())
            .given_no_previous_events()
            .when(failed(1, 1))
            .then_expect_error(BackchannelLogoutError::NotScheduled);
        let rejected = BackchannelLogoutEvent::BackchannelLogoutRejected {
            attempt: 1,
            reason: "HTTP 400".into(),
            rejected_at: t0(),
        };
        LogoutTest::with(services())
            .given(vec![scheduled()])
            .when(BackchannelLogoutCommand::Record {
                attempt: 1,
                outcome: Outcome::Rejected {
                    reason: "HTTP 400".into(),
                },
            })
            .then_expect_events(vec![rejected.clone()]);
        LogoutTest::with(services())
            .given(vec![scheduled(), rejected])
            .when(failed(2, 1))
            .then_expect_error(BackchannelLogoutError::Finished);
    }
}
