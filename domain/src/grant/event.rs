use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::GrantKind;
use crate::values::{CodeChallenge, RedirectUri, ScopeSet, SecretHash, StatusSlot};
use crate::EVENT_VERSION_1;

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum GrantEvent {
    CodeIssued {
        gid: String,
        client_id: String,
        sub: String,
        scopes: ScopeSet,
        audience: Vec<String>,
        redirect_uri: RedirectUri,
        code_hash: SecretHash,
        challenge: Option<CodeChallenge>,
        nonce: Option<String>,
        request_id: String,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        /// When the person signed in (OpenID Connect `auth_time`).
        #[serde(default)]
        auth_time: Option<DateTime<Utc>>,
        /// The browser session (its stream id) the code was issued in, so
        /// logging out revokes what that session granted.
        #[serde(default)]
        sid: Option<String>,
        /// The authorization request named no `redirect_uri` (one was
        /// registered), so the token request need not repeat it.
        #[serde(default)]
        redirect_uri_defaulted: bool,
        /// How long after `expires_at` a token minted from the code could
        /// live, so revoking the pending grant denies it that long (R72).
        /// Absent in events written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_ttl_secs: Option<u64>,
        /// The DPoP key (RFC 9449 §10) the code is bound to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dpop_jkt: Option<String>,
    },
    CodeRedeemed {
        redeemed_at: DateTime<Utc>,
    },
    /// A failed PKCE check spends the code (RFC 9700 §2.1.1).
    CodeBurned {
        reason: String,
        burned_at: DateTime<Utc>,
    },
    CodeReplayDetected {
        detected_at: DateTime<Utc>,
    },
    /// Grants that start without a code: client credentials and password.
    GrantStarted {
        gid: String,
        kind: GrantKind,
        client_id: String,
        sub: Option<String>,
        scopes: ScopeSet,
        audience: Vec<String>,
        started_at: DateTime<Utc>,
    },
    AccessTokenIssued {
        jti: String,
        token_hash: Option<SecretHash>,
        scopes: ScopeSet,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        /// RFC 8707: the resources this token is for when a code exchange
        /// or refresh narrowed them; absent, the grant's audience (and in
        /// every event written before tokens could be narrowed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<Vec<String>>,
        /// The thumbprint of the DPoP key the token is bound to (its
        /// `cnf.jkt`, RFC 9449 §6); absent for a bearer token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jkt: Option<String>,
        /// The token's entry in a status list (draft-ietf-oauth-status-list);
        /// absent for opaque tokens and in events written before lists.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<StatusSlot>,
    },
    RefreshTokenIssued {
        token_hash: SecretHash,
        issued_at: DateTime<Utc>,
        idle_expires_at: DateTime<Utc>,
        family_expires_at: DateTime<Utc>,
        /// The DPoP key a public client's refresh family is bound to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jkt: Option<String>,
    },
    RefreshTokenRotated {
        previous_hash: SecretHash,
        token_hash: SecretHash,
        rotated_at: DateTime<Utc>,
        idle_expires_at: DateTime<Utc>,
        /// The DPoP key the family is bound to from here on: the one it
        /// had, or the key of the first refresh to prove one (a public
        /// client's, RFC 9449 §5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jkt: Option<String>,
    },
    RefreshTokenReuseDetected {
        token_hash: SecretHash,
        detected_at: DateTime<Utc>,
    },
    /// RFC 8693: a client exchanged a token of another grant (the parent)
    /// for one of this grant, acting for the same subject.
    GrantExchanged {
        gid: String,
        client_id: String,
        sub: Option<String>,
        scopes: ScopeSet,
        audience: Vec<String>,
        #[serde(flatten)]
        lineage: super::Lineage,
        started_at: DateTime<Utc>,
    },
    /// RFC 8628 §3.2: a device asked for a grant; nothing is granted
    /// until a person approves it on another device.
    DeviceAuthorizationStarted {
        gid: String,
        client_id: String,
        scopes: ScopeSet,
        audience: Vec<String>,
        device_code_hash: SecretHash,
        request_id: String,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        /// The polling interval the device was given (§3.2 `interval`).
        interval_secs: u64,
        /// How long after `expires_at` a token minted from it could live.
        token_ttl_secs: u64,
    },
    /// The person typed the user code, signed in and allowed it.
    DeviceAuthorizationApproved {
        sub: String,
        auth_time: DateTime<Utc>,
        /// The browser session it was approved in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sid: Option<String>,
        approved_at: DateTime<Utc>,
    },
    DeviceAuthorizationDenied {
        sub: String,
        denied_at: DateTime<Utc>,
    },
    DeviceCodeRedeemed {
        redeemed_at: DateTime<Utc>,
    },
    /// Version 1.1 adds `parties` and `expires_at`: a reader (the
    /// revocation publisher) learns whose token it was and how long to
    /// remember the revocation without asking the read model.
    AccessTokenRevoked {
        jti: String,
        by: String,
        revoked_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parties: Option<GrantParties>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
    /// Carries what consumers need to forget the revocation later: the
    /// access tokens it kills and the latest expiry among them. Version 1.1
    /// adds `parties`.
    GrantRevoked {
        by: String,
        reason: String,
        jtis: Vec<String>,
        expires_at: Option<DateTime<Utc>>,
        revoked_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parties: Option<GrantParties>,
    },
}

/// Whose grant it is and whom its access tokens are for. Absent from
/// events of version 1.0, written before events carried it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantParties {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audience: Vec<String>,
}

impl GrantParties {
    pub(super) fn of(grant: &super::Grant) -> Self {
        Self {
            client_id: grant.client_id.clone(),
            sub: grant.sub.clone(),
            audience: grant.audience.clone(),
        }
    }
}

/// The revocation events gained `parties` (and `AccessTokenRevoked` its
/// `expires_at`) in this version; every other grant event is 1.0.
pub const REVOCATIONS_VERSION: &str = "1.1";

impl GrantEvent {
    /// Event types whose current version is [`REVOCATIONS_VERSION`].
    pub const VERSION_1_1: &'static [&'static str] = &["AccessTokenRevoked", "GrantRevoked"];

    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl DomainEvent for GrantEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            Self::AccessTokenRevoked { .. } | Self::GrantRevoked { .. } => REVOCATIONS_VERSION,
            _ => EVENT_VERSION_1,
        }
        .to_owned()
    }
}
