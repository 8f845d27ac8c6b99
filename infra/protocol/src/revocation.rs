//! The revocation message Writ publishes (Kafka topic, server-sent-event
//! feed) and resource servers consume: one per revocation, the wire
//! contract documented by `docs/revocation-event.schema.json`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the message shape; the JSON Schema's `$id` carries it too.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationType {
    /// One access token: deny its `jti`.
    TokenRevoked,
    /// A whole grant: deny its `gid` and every `jti` listed.
    GrantRevoked,
    /// Deny tokens of (`sub`, `client_id`) issued up to `revoked_at`.
    ConsentWithdrawn,
    /// Deny tokens of `client_id` issued up to `revoked_at`.
    ClientDisabled,
    /// Deny tokens of `sub` issued up to `revoked_at`.
    AccountDisabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub version: u32,
    #[serde(rename = "type")]
    pub kind: RevocationType,
    pub jtis: Vec<String>,
    pub gid: Option<String>,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    pub revoked_at: DateTime<Utc>,
    /// The latest expiry among the tokens it affects: after it the entry
    /// denies nothing and consumers may forget it.
    pub expires_at: DateTime<Utc>,
    pub reason: String,
    /// The event's place in the global order (design: cursors).
    pub cursor: String,
}

impl Revocation {
    /// The partition key: revocations of one grant (else one client, else
    /// one subject) stay in order.
    pub fn key(&self) -> &str {
        self.gid
            .as_deref()
            .or(self.client_id.as_deref())
            .or(self.sub.as_deref())
            .unwrap_or_default()
    }
}
