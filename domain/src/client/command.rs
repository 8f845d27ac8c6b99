use serde::{Deserialize, Serialize};

use super::AuthMethod;

use crate::values::{
    ApplicationType, GrantType, IdTokenAlg, RedirectUri, ResourceUri, ScopeSet, SecretHash,
    TokenFormat,
};

/// Everything an administrator can set on a client. Lifetimes are seconds
/// so events stay plain JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSettings {
    pub name: String,
    pub redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub scopes: ScopeSet,
    pub public: bool,
    pub application_type: ApplicationType,
    pub token_format: TokenFormat,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub audience: Vec<String>,
    /// RFC 8707 resource URIs this (confidential) client answers for as a
    /// resource server: introspection shows it the tokens whose `aud`
    /// names one of them, as client ids cannot be URIs. Absent from events
    /// written before the setting existed, and left out when empty so that
    /// a client's settings read the same before and after (the rebuild
    /// compares them as text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceUri>,
    /// Where RP-initiated logout may send the browser back to (exact match).
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// The id_token signature; `None` is RS256, OpenID Connect's default.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<IdTokenAlg>,
    /// May subscribe to `GET /revocations`. Off unless an administrator
    /// turns it on, so an ordinary client never learns of other clients'
    /// revocations; absent from events recorded before it existed, and
    /// left out when off, as `resources` is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revocation_feed: bool,
    /// RFC 9126 §6: the client's authorization requests must arrive
    /// through the pushed authorization request endpoint. Left out when
    /// off, as `revocation_feed` is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    /// RFC 9449 §5.2: every token request must carry a DPoP proof, so
    /// every access token is bound to a key. Left out when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// The FAPI 2.0 Security Profile applies to this client: it
    /// authenticates with `private_key_jwt`, pushes its requests and binds
    /// its tokens with DPoP (both set with it), and its refresh tokens are
    /// not rotated (docs/fapi2.md). Left out when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fapi2_security_profile: bool,
    /// RFC 7591's `token_endpoint_auth_method` as registered. Absent from
    /// clients registered before it was recorded: a secret (or none) says
    /// how they authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<AuthMethod>,
    /// The public keys a `private_key_jwt` client signs its assertions
    /// with (RFC 7591 `jwks`), or where to fetch them (`jwks_uri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// OpenID Connect Back-Channel Logout 1.0: where a logout token is
    /// POSTed when a session it received an id_token in ends. Left out
    /// when absent, as `jwks_uri` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// The client asks for `sid` in logout tokens; Writ always sends it,
    /// and keeps the setting to say so back. Left out when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_logout_session_required: bool,
}

impl ClientSettings {
    /// Whether the client authenticates with a secret Writ holds the hash
    /// of: every confidential client but a `private_key_jwt` one.
    pub fn uses_secret(&self) -> bool {
        !self.public && self.token_endpoint_auth_method != Some(AuthMethod::PrivateKeyJwt)
    }

    /// The id_token's (and the logout token's, which is validated the
    /// same way) signature algorithm: the client's choice, RS256 by
    /// default, except that FAPI 2.0 (§5.4.1) allows no RS256, which then
    /// becomes the access tokens' algorithm, whose key is always active.
    pub fn id_token_alg(&self, server_fapi2: bool, access_token_alg: &str) -> IdTokenAlg {
        let alg = self.id_token_signed_response_alg.unwrap_or_default();
        if alg == IdTokenAlg::RS256 && self.fapi2(server_fapi2) {
            return IdTokenAlg::parse(access_token_alg).unwrap_or(IdTokenAlg::ES256);
        }
        alg
    }

    /// Whether FAPI 2.0 applies: the client's own profile, or the
    /// server's for every client.
    pub fn fapi2(&self, server_wide: bool) -> bool {
        server_wide || self.fapi2_security_profile
    }
}

#[derive(Debug, Clone)]
pub enum ClientCommand {
    /// `secret_hash` is `None` exactly for public clients.
    Register {
        client_id: String,
        settings: ClientSettings,
        secret_hash: Option<SecretHash>,
        /// RFC 7592: set when the client registered itself.
        registration_token_hash: Option<SecretHash>,
    },
    RotateSecret {
        secret_hash: SecretHash,
    },
    ChangeSettings {
        settings: ClientSettings,
    },
    Disable {
        reason: String,
    },
    /// Replaces the registration access token `presented` (its hash) with
    /// `next`; refused when `presented` is no longer the current one, so
    /// two requests racing with one token cannot both get a new one.
    RotateRegistrationToken {
        presented: SecretHash,
        next: SecretHash,
    },
}
