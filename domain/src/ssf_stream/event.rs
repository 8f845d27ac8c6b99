use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::values::Sealed;
use crate::EVENT_VERSION_1;

/// How a stream's SETs reach its receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Delivery {
    /// RFC 8935: Writ POSTs each SET to the receiver's endpoint, with the
    /// receiver's `Authorization` value, sealed under the key-encryption
    /// key: it is the receiver's secret and never enters the log in clear.
    Push {
        endpoint_url: String,
        authorization_header: Option<Sealed>,
    },
    /// RFC 8936: the receiver polls Writ.
    Poll,
}

/// What a receiver configured: everything but the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfig {
    pub delivery: Delivery,
    /// The event type URIs asked for, as asked (unknown ones included: SSF
    /// ignores them, it does not refuse them); `None` asks for every one.
    pub events_requested: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStatus {
    #[default]
    Enabled,
    /// Events are held and delivered when the stream is enabled again.
    Paused,
    /// Events are dropped: enabling again resumes at the log's head.
    Disabled,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Enabled, Self::Paused, Self::Disabled]
            .into_iter()
            .find(|status| status.as_str() == raw)
    }
}

/// A receiver's report that it could not use a SET (RFC 8936 `setErrs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetError {
    pub jti: String,
    pub err: String,
    pub description: Option<String>,
}

/// The variant's name is the event type, in the log and in its JSON.
/// Positions are log cursors as text (their string order is log order).
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum SsfStreamEvent {
    SsfStreamCreated {
        receiver: String,
        config: StreamConfig,
        /// The stream receives the signals after this position.
        start_after: String,
        created_at: DateTime<Utc>,
    },
    SsfStreamUpdated {
        config: StreamConfig,
        updated_at: DateTime<Utc>,
    },
    SsfStreamStatusChanged {
        status: StreamStatus,
        reason: Option<String>,
        /// Leaving `disabled`: the log's head then, so what happened while
        /// disabled is never delivered.
        resume_after: Option<String>,
        changed_at: DateTime<Utc>,
    },
    /// The stream stops (or, added back, resumes) receiving events about
    /// this subject; every other subject stays included (`default_subjects`
    /// is ALL).
    SsfSubjectRemoved {
        subject: serde_json::Value,
        removed_at: DateTime<Utc>,
    },
    SsfSubjectAdded {
        subject: serde_json::Value,
        added_at: DateTime<Utc>,
    },
    /// A verification SET (SSF §8.1.4) is due at this place in the log.
    SsfVerificationRequested {
        state: Option<String>,
        requested_at: DateTime<Utc>,
    },
    SsfStreamDeleted {
        deleted_at: DateTime<Utc>,
    },
    /// The receiver had every SET of this stream up to `up_to`: accepted
    /// with a 202 (push) or handed over in a poll answer (poll). One event
    /// per batch, so the log does not double.
    SsfSetsDelivered {
        up_to: String,
        count: u32,
        delivered_at: DateTime<Utc>,
    },
    /// A poller acknowledged these SETs (by position), some perhaps with
    /// errors; every SET at or before `floor` is acknowledged.
    SsfSetsAcknowledged {
        positions: Vec<String>,
        errors: Vec<SetError>,
        floor: String,
        acknowledged_at: DateTime<Utc>,
    },
    /// A push receiver did not accept this SET in the retry window: it is
    /// not sent again, and the stream goes on past it.
    SsfSetAbandoned {
        position: String,
        jti: String,
        attempts: u32,
        reason: String,
        abandoned_at: DateTime<Utc>,
    },
}

impl SsfStreamEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl DomainEvent for SsfStreamEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}
