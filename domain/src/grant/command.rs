use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::values::{CodeChallenge, RedirectUri, ScopeSet, SecretHash, StatusSlot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    AuthorizationCode,
    ClientCredentials,
    Password,
    DeviceCode,
    TokenExchange,
}

/// What to mint on success. Raw tokens are made and kept by the caller;
/// only their hashes travel here. JWT access tokens have no hash: they are
/// found by `jti`, which the aggregate mints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub access_ttl_secs: u64,
    pub opaque_access_hash: Option<SecretHash>,
    pub refresh: Option<RefreshRequest>,
    /// RFC 8707 at a code exchange or refresh: the access token is for
    /// these resources only, each of which the grant must hold.
    pub audience: Option<Vec<String>>,
    /// RFC 9449: the thumbprint of the key the request's DPoP proof was
    /// signed with; its access token is bound to it (`cnf.jkt`).
    pub dpop_jkt: Option<String>,
    /// Where a JWT access token's status is published; none for opaque
    /// tokens, which only introspection answers for.
    pub status: Option<StatusSlot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRequest {
    pub token_hash: SecretHash,
    /// Idle lifetime: each use must come within this of the previous one.
    pub idle_ttl_secs: u64,
    /// Absolute lifetime of the whole family, fixed at its first issuance.
    pub family_ttl_secs: u64,
    /// RFC 9449 §5: a public client's refresh token is bound to the key
    /// of the proof it was first issued with; each use must prove it.
    pub jkt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    AccessJti(String),
    AccessHash(SecretHash),
    RefreshHash(SecretHash),
}

#[derive(Debug, Clone)]
pub enum GrantCommand {
    IssueCode {
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
        code_ttl_secs: u64,
        auth_time: Option<DateTime<Utc>>,
        sid: Option<String>,
        redirect_uri_defaulted: bool,
        /// RFC 9449 §10: `dpop_jkt` at the authorization request, or the
        /// key of the proof sent with its push; only a token request
        /// proving that key may redeem the code.
        dpop_jkt: Option<String>,
        /// The longest a token minted from the code could outlive it: the
        /// client's access-token lifetime plus its refresh family's.
        token_ttl_secs: u64,
    },
    RedeemCode {
        client_id: String,
        code_hash: SecretHash,
        /// RFC 6749 §4.1.3: required when the authorization request had one.
        redirect_uri: Option<RedirectUri>,
        verifier: Option<String>,
        tokens: TokenRequest,
    },
    GrantClientCredentials {
        gid: String,
        client_id: String,
        scopes: ScopeSet,
        audience: Vec<String>,
        tokens: TokenRequest,
    },
    GrantByPassword {
        gid: String,
        client_id: String,
        sub: String,
        scopes: ScopeSet,
        audience: Vec<String>,
        tokens: TokenRequest,
    },
    Refresh {
        client_id: String,
        token_hash: SecretHash,
        /// A narrower set, or `None` for the granted scopes (RFC 6749 §6).
        scopes: Option<ScopeSet>,
        tokens: TokenRequest,
    },
    /// RFC 8628 §3.1. The stream id is derived from the user code, so
    /// two live authorizations can never share one: the second start on
    /// a stream is refused and the caller draws another code.
    StartDeviceAuthorization {
        gid: String,
        client_id: String,
        scopes: ScopeSet,
        audience: Vec<String>,
        device_code_hash: SecretHash,
        request_id: String,
        ttl_secs: u64,
        interval_secs: u64,
        token_ttl_secs: u64,
    },
    /// RFC 8693: a new grant, child of the subject token's.
    Exchange {
        gid: String,
        client_id: String,
        sub: Option<String>,
        scopes: ScopeSet,
        audience: Vec<String>,
        lineage: super::Lineage,
        tokens: TokenRequest,
    },
    /// The person's answer on the verification page.
    DecideDevice {
        sub: String,
        auth_time: DateTime<Utc>,
        sid: Option<String>,
        allow: bool,
    },
    /// RFC 8628 §3.4: the device polls the token endpoint.
    RedeemDeviceCode {
        client_id: String,
        device_code_hash: SecretHash,
        tokens: TokenRequest,
    },
    RevokeToken {
        client_id: String,
        token: TokenRef,
        by: String,
    },
    Revoke {
        by: String,
        reason: String,
    },
}
