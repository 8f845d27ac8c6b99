//! A Shared Signals stream (OpenID SSF 1.0 §8.1): one receiver's
//! subscription to Writ's security events, its configuration and status,
//! and the proof of what it was told. Every SET a stream carries is made
//! from an event in the log, so the stream itself keeps only positions:
//! where it starts, how far its receiver has been delivered (push) or has
//! acknowledged (poll), and which SETs were abandoned.

mod event;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use event::{Delivery, SetError, SsfStreamEvent, StreamConfig, StreamStatus};

use crate::Services;

#[derive(Debug, Clone)]
pub enum SsfStreamCommand {
    Create {
        receiver: String,
        config: StreamConfig,
        start_after: String,
    },
    /// The receiver-side commands name the receiver: another receiver's
    /// stream is as good as absent.
    Update {
        receiver: String,
        config: StreamConfig,
    },
    SetStatus {
        receiver: String,
        status: StreamStatus,
        reason: Option<String>,
        /// The log's head now, where a disabled stream resumes.
        head: String,
    },
    RemoveSubject {
        receiver: String,
        subject: serde_json::Value,
    },
    AddSubject {
        receiver: String,
        subject: serde_json::Value,
    },
    Verify {
        receiver: String,
        state: Option<String>,
    },
    Delete {
        receiver: String,
    },
    Acknowledge {
        receiver: String,
        positions: Vec<String>,
        errors: Vec<SetError>,
        floor: String,
    },
    RecordDelivered {
        up_to: String,
        count: u32,
    },
    Abandon {
        position: String,
        jti: String,
        attempts: u32,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SsfStreamError {
    #[error("a stream with this id already exists")]
    AlreadyExists,
    #[error("no such stream")]
    NotFound,
    #[error("this stream delivers by push; only a poll stream is polled")]
    NotPolled,
    #[error("already recorded")]
    AlreadyRecorded,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SsfStream {
    pub receiver: String,
    pub config: Option<StreamConfig>,
    pub status: StreamStatus,
    pub reason: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// The stream carries the signals after this position.
    pub start_after: String,
    /// Push: every SET up to here was accepted or abandoned.
    pub delivered_up_to: String,
    /// Poll: every SET up to here was acknowledged; `acked_above` holds
    /// the positions acknowledged beyond it, out of order.
    pub acked_floor: String,
    pub acked_above: BTreeSet<String>,
    /// Subjects removed from the stream, as the receiver gave them.
    pub excluded: Vec<serde_json::Value>,
    pub deleted: bool,
}

/// The later of two log positions (their string order is log order).
fn later(a: &str, b: &str) -> String {
    a.max(b).to_owned()
}

impl SsfStream {
    /// Live and the receiver's: what every receiver-side command needs.
    fn owned_by(&self, receiver: &str) -> Result<(), SsfStreamError> {
        if self.config.is_none() || self.deleted || self.receiver != receiver {
            return Err(SsfStreamError::NotFound);
        }
        Ok(())
    }

    pub fn is_poll(&self) -> bool {
        matches!(
            self.config.as_ref().map(|c| &c.delivery),
            Some(Delivery::Poll)
        )
    }

    pub fn is_push(&self) -> bool {
        matches!(
            self.config.as_ref().map(|c| &c.delivery),
            Some(Delivery::Push { .. })
        )
    }

    /// Whether a SET of the subject `sub` is for this stream.
    pub fn includes_subject(&self, sub: Option<&str>) -> bool {
        let Some(sub) = sub else { return true };
        !self.excluded.iter().any(|subject| names_sub(subject, sub))
    }

    fn decide(
        &self,
        command: SsfStreamCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<SsfStreamEvent>, SsfStreamError> {
        use SsfStreamCommand as C;
        use SsfStreamEvent as E;
        let event = match command {
            C::Create {
                receiver,
                config,
                start_after,
            } => {
                if self.config.is_some() {
                    return Err(SsfStreamError::AlreadyExists);
                }
                E::SsfStreamCreated {
                    receiver,
                    config,
                    start_after,
                    created_at: now,
                }
            }
            C::Update { receiver, config } => {
                self.owned_by(&receiver)?;
                E::SsfStreamUpdated {
                    config,
                    updated_at: now,
                }
            }
            C::SetStatus {
                receiver,
                status,
                reason,
                head,
            } => {
                self.owned_by(&receiver)?;
                let resume_after = (self.status == StreamStatus::Disabled
                    && status != StreamStatus::Disabled)
                    .then_some(head);
                E::SsfStreamStatusChanged {
                    status,
                    reason,
                    resume_after,
                    changed_at: now,
                }
            }
            C::RemoveSubject { receiver, subject } => {
                self.owned_by(&receiver)?;
                E::SsfSubjectRemoved {
                    subject,
                    removed_at: now,
                }
            }
            C::AddSubject { receiver, subject } => {
                self.owned_by(&receiver)?;
                E::SsfSubjectAdded {
                    subject,
                    added_at: now,
                }
            }
            C::Verify { receiver, state } => {
                self.owned_by(&receiver)?;
                E::SsfVerificationRequested {
                    state,
                    requested_at: now,
                }
            }
            C::Delete { receiver } => {
                self.owned_by(&receiver)?;
                E::SsfStreamDeleted { deleted_at: now }
            }
            C::Acknowledge {
                receiver,
                positions,
                errors,
                floor,
            } => {
                self.owned_by(&receiver)?;
                if !self.is_poll() {
                    return Err(SsfStreamError::NotPolled);
                }
                let new: Vec<String> = positions
                    .into_iter()
                    .filter(|p| *p > self.acked_floor && !self.acked_above.contains(p))
                    .collect();
                if new.is_empty() && errors.is_empty() && floor <= self.acked_floor {
                    return Ok(Vec::new());
                }
                E::SsfSetsAcknowledged {
                    positions: new,
                    errors,
                    floor: later(&floor, &self.acked_floor),
                    acknowledged_at: now,
                }
            }
            C::RecordDelivered { up_to, count } => {
                if self.config.is_none() {
                    return Err(SsfStreamError::NotFound);
                }
                if up_to <= self.delivered_up_to {
                    return Err(SsfStreamError::AlreadyRecorded);
                }
                E::SsfSetsDelivered {
                    up_to,
                    count,
                    delivered_at: now,
                }
            }
            C::Abandon {
                position,
                jti,
                attempts,
                reason,
            } => {
                if self.config.is_none() {
                    return Err(SsfStreamError::NotFound);
                }
                if position <= self.delivered_up_to {
                    return Err(SsfStreamError::AlreadyRecorded);
                }
                E::SsfSetAbandoned {
                    position,
                    jti,
                    attempts,
                    reason,
                    abandoned_at: now,
                }
            }
        };
        Ok(vec![event])
    }
}

/// Whether a receiver's subject identifier (RFC 9493) names the person
/// `sub`: `iss_sub` by its `sub`, `opaque` by its `id`; a `complex` one by
/// its `user`.
pub fn names_sub(subject: &serde_json::Value, sub: &str) -> bool {
    let field = |name: &str| subject.get(name).and_then(|v| v.as_str());
    match field("format") {
        Some("iss_sub") => field("sub") == Some(sub),
        Some("opaque") => field("id") == Some(sub),
        Some("complex") => subject.get("user").is_some_and(|user| names_sub(user, sub)),
        _ => false,
    }
}

impl Aggregate for SsfStream {
    const TYPE: &'static str = "SsfStream";
    type Command = SsfStreamCommand;
    type Event = SsfStreamEvent;
    type Error = SsfStreamError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command, services.now())? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use SsfStreamEvent as E;
        match event {
            E::SsfStreamCreated {
                receiver,
                config,
                start_after,
                created_at,
            } => {
                self.receiver = receiver;
                self.config = Some(config);
                self.created_at = Some(created_at);
                self.start_after = start_after.clone();
                self.delivered_up_to = start_after.clone();
                self.acked_floor = start_after;
            }
            E::SsfStreamUpdated { config, .. } => self.config = Some(config),
            E::SsfStreamStatusChanged {
                status,
                reason,
                resume_after,
                ..
            } => {
                self.status = status;
                self.reason = reason;
                if let Some(head) = resume_after {
                    self.delivered_up_to = later(&self.delivered_up_to, &head);
                    self.acked_floor = later(&self.acked_floor, &head);
                    let floor = self.acked_floor.clone();
                    self.acked_above.retain(|p| *p > floor);
                }
            }
            E::SsfSubjectRemoved { subject, .. } => {
                if !self.excluded.contains(&subject) {
                    self.excluded.push(subject);
                }
            }
            E::SsfSubjectAdded { subject, .. } => self.excluded.retain(|s| *s != subject),
            E::SsfVerificationRequested { .. } => {}
            E::SsfStreamDeleted { .. } => self.deleted = true,
            E::SsfSetsDelivered { up_to, .. } => {
                self.delivered_up_to = later(&self.delivered_up_to, &up_to);
            }
            E::SsfSetsAcknowledged {
                positions, floor, ..
            } => {
                self.acked_floor = later(&self.acked_floor, &floor);
                let floor = self.acked_floor.clone();
                self.acked_above
                    .extend(positions.into_iter().filter(|p| *p > floor));
                self.acked_above.retain(|p| *p > floor);
            }
            E::SsfSetAbandoned { position, .. } => {
                self.delivered_up_to = later(&self.delivered_up_to, &position);
            }
        }
    }
}
