//! id_tokens (OpenID Connect Core §2, §3.1.3.6): RS256 unless the client
//! asked for ES256 or EdDSA, never `alg: none`, with `kid`, `nonce`,
//! `auth_time`, `at_hash`, `sid`, and the claims its scopes allow.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use writ_domain::grant::Grant;
use writ_domain::values::IdTokenAlg;
use writ_edge::{AuthenticatedClient, OAuthError};
use writ_infra::signing::jwt;

use crate::issue::Issued;
use crate::CommandState;

/// §3.1.3.6: the left half of the access token's hash, with the hash of the
/// signing algorithm (SHA-512 for Ed25519).
pub fn at_hash(alg: IdTokenAlg, access_token: &str) -> String {
    let digest = match alg {
        IdTokenAlg::EdDSA => Sha512::digest(access_token.as_bytes()).to_vec(),
        IdTokenAlg::RS256 | IdTokenAlg::ES256 => Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// What an id_token is issued at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    CodeExchange,
    /// OpenID Connect Core §12.2: the same `sub` and `auth_time`, a new
    /// `iat`, and no `nonce`.
    Refresh,
}

pub async fn sign(
    state: &CommandState,
    client: &AuthenticatedClient,
    sub: &str,
    grant: &Grant,
    issued: &Issued,
    at: At,
) -> Result<String, OAuthError> {
    let alg = client
        .settings
        .id_token_alg(state.fapi2, &state.signing_alg);
    let signer = state
        .keys
        .signer(alg.as_str())
        .ok_or_else(OAuthError::unavailable)?;
    let scopes: Vec<&str> = issued.scopes.iter().collect();
    let mut claims = writ_infra::claims::for_scopes(&state.store, &state.key_ring, sub, &scopes)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?;
    let authentication = grant.authentication.as_ref();
    let extra = json!({
        "iss": state.issuer,
        "sub": sub,
        "aud": client.client_id,
        "azp": client.client_id,
        "iat": issued.issued_at.timestamp(),
        "exp": issued.expires_at.timestamp(),
        "at_hash": at_hash(alg, &issued.access_token),
    });
    merge(&mut claims, extra);
    if let Some(auth_time) = authentication.and_then(|a| a.auth_time) {
        claims["auth_time"] = json!(auth_time.timestamp());
    }
    // Back-Channel Logout 1.0 §2.1: the session the sign-in belongs to,
    // which a logout token names when that session ends.
    if let Some(sid) = authentication.and_then(|a| a.sid.as_deref()) {
        claims["sid"] = json!(sid);
    }
    if let (At::CodeExchange, Some(nonce)) = (at, authentication.and_then(|a| a.nonce.as_deref())) {
        claims["nonce"] = json!(nonce);
    }
    jwt::encode(&signer, "JWT", &claims).map_err(|e| OAuthError::unavailable().because(e))
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        // OpenID Connect Core §A.3's example token and at_hash.
        assert_eq!(
            at_hash(
                IdTokenAlg::RS256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(at_hash(IdTokenAlg::EdDSA, "t").len(), 43);
    }
}
