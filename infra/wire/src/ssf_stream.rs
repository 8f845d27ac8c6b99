//! The Shared Signals management bodies a receiver sends (SSF 1.0 §8.1),
//! parsed and checked for everything that needs neither the stream nor a
//! key: the delivery method, a push endpoint's shape, and the bounds on
//! every field a stream keeps.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use writ_domain::client::is_server_side_uri;
use writ_domain::ssf_stream::{StreamConfig, StreamStatus};
use writ_protocol::signals::{POLL, PUSH};

use crate::Invalid;

/// Descriptions, reasons and `state` longer than this are refused.
pub const LONGEST_TEXT: usize = 1_024;
/// What a push endpoint must be (R57); also said when the address it
/// names turns out not to be one Writ may call.
pub const UNCALLABLE_ENDPOINT: &str = "delivery.endpoint_url must be https (or http on a loopback address) and not a private, link-local or metadata address";

/// A JSON body of the shape `T`, or a 400 naming what was wrong.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Invalid> {
    serde_json::from_slice(bytes)
        .map_err(|e| Invalid::request(format!("the body is not valid JSON for this request: {e}")))
}

#[derive(Debug, Deserialize)]
pub struct StreamId {
    pub stream_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryIn {
    pub method: String,
    pub endpoint_url: Option<String>,
    pub authorization_header: Option<String>,
}

/// A delivery method and, for push, where and with what header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskedDelivery {
    Poll,
    Push {
        endpoint_url: String,
        authorization_header: Option<String>,
    },
}

impl DeliveryIn {
    pub fn checked(self) -> Result<AskedDelivery, Invalid> {
        match self.method.as_str() {
            POLL => Ok(AskedDelivery::Poll),
            PUSH => {
                let endpoint_url = self
                    .endpoint_url
                    .ok_or_else(|| Invalid::request("a push stream needs delivery.endpoint_url"))?;
                if !is_server_side_uri(&endpoint_url) {
                    return Err(Invalid::request(UNCALLABLE_ENDPOINT));
                }
                Ok(AskedDelivery::Push {
                    endpoint_url,
                    authorization_header: self.authorization_header,
                })
            }
            _ => Err(Invalid::request(
                "delivery.method must be urn:ietf:rfc:8935 (push) or urn:ietf:rfc:8936 (poll)",
            )),
        }
    }
}

/// What a receiver may send; the transmitter's own fields (`iss`, `aud`,
/// `events_supported`, `events_delivered`, …) are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct StreamIn {
    pub stream_id: Option<String>,
    pub delivery: Option<DeliveryIn>,
    pub events_requested: Option<Vec<String>>,
    pub description: Option<String>,
    /// Writ's: start after this log cursor instead of now.
    pub start_after: Option<String>,
    /// Writ's: start with what was recorded from this time on.
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The bounds every configuration keeps, however it was reached.
pub fn bounded(config: StreamConfig) -> Result<StreamConfig, Invalid> {
    if config
        .description
        .as_ref()
        .is_some_and(|d| d.len() > LONGEST_TEXT)
    {
        return Err(Invalid::request("description is longer than 1024 bytes"));
    }
    if config
        .events_requested
        .as_ref()
        .is_some_and(|e| e.len() > 64 || e.iter().any(|uri| uri.len() > 256))
    {
        return Err(Invalid::request(
            "events_requested names more than 64 event types, or one too long",
        ));
    }
    Ok(config)
}

#[derive(Debug, Deserialize)]
pub struct StatusIn {
    pub stream_id: String,
    pub status: String,
    pub reason: Option<String>,
}

impl StatusIn {
    /// The status asked for, with a reason of bounded length.
    pub fn checked(&self) -> Result<StreamStatus, Invalid> {
        if self.reason.as_ref().is_some_and(|r| r.len() > LONGEST_TEXT) {
            return Err(Invalid::request("reason is longer than 1024 bytes"));
        }
        StreamStatus::parse(&self.status)
            .ok_or_else(|| Invalid::request("status must be enabled, paused or disabled"))
    }
}

#[derive(Debug, Deserialize)]
pub struct SubjectIn {
    pub stream_id: String,
    pub subject: Value,
}

impl SubjectIn {
    /// Only identifiers Writ can match to a person: another format would
    /// be accepted and then match nothing.
    pub fn checked(&self) -> Result<(), Invalid> {
        let format = self.subject.get("format").and_then(Value::as_str);
        if !matches!(format, Some("iss_sub" | "opaque" | "complex"))
            || self.subject.to_string().len() > 2048
        {
            return Err(Invalid::request(
                "subject must be an iss_sub, opaque or complex (with user) subject identifier (RFC 9493)",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
pub struct VerifyIn {
    pub stream_id: String,
    pub state: Option<String>,
}

impl VerifyIn {
    pub fn checked(&self) -> Result<(), Invalid> {
        if self.state.as_ref().is_some_and(|s| s.len() > LONGEST_TEXT) {
            return Err(Invalid::request("state is longer than 1024 bytes"));
        }
        Ok(())
    }
}
