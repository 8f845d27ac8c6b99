use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::GrantKind;
use crate::values::{CodeChallenge, RedirectUri, ScopeSet, SecretHash};
use crate::EVENT_VERSION_1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    },
    RefreshTokenIssued {
        token_hash: SecretHash,
        issued_at: DateTime<Utc>,
        idle_expires_at: DateTime<Utc>,
        family_expires_at: DateTime<Utc>,
    },
    RefreshTokenRotated {
        previous_hash: SecretHash,
        token_hash: SecretHash,
        rotated_at: DateTime<Utc>,
        idle_expires_at: DateTime<Utc>,
    },
    RefreshTokenReuseDetected {
        token_hash: SecretHash,
        detected_at: DateTime<Utc>,
    },
    AccessTokenRevoked {
        jti: String,
        by: String,
        revoked_at: DateTime<Utc>,
    },
    /// Carries what consumers need to forget the revocation later: the
    /// access tokens it kills and the latest expiry among them.
    GrantRevoked {
        by: String,
        reason: String,
        jtis: Vec<String>,
        expires_at: Option<DateTime<Utc>>,
        revoked_at: DateTime<Utc>,
    },
}

impl GrantEvent {
    pub const TYPES: &'static [&'static str] = &[
        "CodeIssued",
        "CodeRedeemed",
        "CodeBurned",
        "CodeReplayDetected",
        "GrantStarted",
        "AccessTokenIssued",
        "RefreshTokenIssued",
        "RefreshTokenRotated",
        "RefreshTokenReuseDetected",
        "AccessTokenRevoked",
        "GrantRevoked",
    ];
}

impl DomainEvent for GrantEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CodeIssued { .. } => "CodeIssued",
            Self::CodeRedeemed { .. } => "CodeRedeemed",
            Self::CodeBurned { .. } => "CodeBurned",
            Self::CodeReplayDetected { .. } => "CodeReplayDetected",
            Self::GrantStarted { .. } => "GrantStarted",
            Self::AccessTokenIssued { .. } => "AccessTokenIssued",
            Self::RefreshTokenIssued { .. } => "RefreshTokenIssued",
            Self::RefreshTokenRotated { .. } => "RefreshTokenRotated",
            Self::RefreshTokenReuseDetected { .. } => "RefreshTokenReuseDetected",
            Self::AccessTokenRevoked { .. } => "AccessTokenRevoked",
            Self::GrantRevoked { .. } => "GrantRevoked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}
