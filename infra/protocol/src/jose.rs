//! Compact JWS verification (RFC 7515) against the public keys Writ
//! publishes in its JWKS, through `jsonwebtoken`: what Writ checks its own
//! tokens with and what an API checks them with, so the two can never
//! disagree. Claims are only verified here; what they must say (issuer,
//! audience, expiry) is each caller's to check.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// Tokens longer than this are not Writ's; refuse before any parsing.
pub const MAX_JWT_LEN: usize = 8 * 1024;
/// A signed token status list grows with its revoked entries: a list of
/// 2^20 with every other index revoked stays under this.
pub const MAX_STATUS_LIST_LEN: usize = 1 << 20;

/// Whether a presented token is shaped like a JWS (three dot-separated parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.len() <= MAX_JWT_LEN && token.split('.').count() == 3
}

pub struct Verified {
    pub header: Value,
    pub claims: Value,
}

/// The algorithms Writ signs with; anything else verifies nothing.
fn algorithm(alg: &str) -> Option<Algorithm> {
    match alg {
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        "RS256" => Some(Algorithm::RS256),
        _ => None,
    }
}

fn decoding_key(public_jwk: &Value) -> Option<DecodingKey> {
    // Read in place: verification runs on every JWT introspected.
    let jwk = Jwk::deserialize(public_jwk).ok()?;
    DecodingKey::from_jwk(&jwk).ok()
}

/// The header and claims of a token whose signature verifies under the key
/// its `kid` names, with that key's algorithm. `alg: none`, an algorithm
/// other than the key's, or an unknown `kid` verify nothing.
pub fn verify(token: &str, key_for: impl Fn(&str) -> Option<(String, Value)>) -> Option<Verified> {
    verify_up_to(MAX_JWT_LEN, token, key_for)
}

/// [`verify`] for a JWS that may be longer than a token (a status list).
pub fn verify_up_to(
    max_len: usize,
    token: &str,
    key_for: impl Fn(&str) -> Option<(String, Value)>,
) -> Option<Verified> {
    if token.len() > max_len || token.split('.').count() != 3 {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    let (alg, jwk) = key_for(header.kid.as_deref()?)?;
    let alg = algorithm(&alg)?;
    if header.alg != alg {
        return None;
    }
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Value>(token, &decoding_key(&jwk)?, &validation).ok()?;
    Some(Verified {
        header: serde_json::to_value(&data.header).ok()?,
        claims: data.claims,
    })
}

/// Whether `sig` is `alg`'s signature of `message` under the public JWK
/// (RFC 7518 §3.4 fixed-size ECDSA, RFC 8037 Ed25519, PKCS#1 v1.5 RSA).
pub fn verify_signature(public_jwk: &Value, alg: &str, message: &[u8], sig: &[u8]) -> bool {
    let (Some(alg), Some(key)) = (algorithm(alg), decoding_key(public_jwk)) else {
        return false;
    };
    jsonwebtoken::crypto::verify(&URL_SAFE_NO_PAD.encode(sig), message, &key, alg).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    use serde_json::json;

    fn ed25519() -> (Ed25519KeyPair, Value) {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap_or_else(|e| panic!("{e}"));
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap_or_else(|e| panic!("{e}"));
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA",
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        });
        (pair, jwk)
    }

    fn token(pair: &Ed25519KeyPair, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = pair.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    #[test]
    fn a_token_verifies_under_its_kid_and_algorithm_only() {
        let (pair, jwk) = ed25519();
        let good = token(
            &pair,
            json!({"alg": "EdDSA", "kid": "k1", "typ": "at+jwt"}),
            json!({"jti": "j1"}),
        );
        let known = |kid: &str| (kid == "k1").then(|| ("EdDSA".to_owned(), jwk.clone()));
        let verified = verify(&good, known).unwrap_or_else(|| panic!("did not verify"));
        assert_eq!(verified.claims["jti"], "j1");
        assert_eq!(verified.header["typ"], "at+jwt");
        assert!(verify(&good, |_| None).is_none(), "unknown kid");
        let as_es256 = |_: &str| Some(("ES256".to_owned(), jwk.clone()));
        assert!(
            verify(&good, as_es256).is_none(),
            "the key's algorithm rules"
        );
        let (other, _) = ed25519();
        let forged = token(
            &other,
            json!({"alg": "EdDSA", "kid": "k1"}),
            json!({"jti": "j1"}),
        );
        assert!(verify(&forged, known).is_none(), "another key's signature");
    }

    #[test]
    fn alg_none_empty_signatures_and_oversized_tokens_verify_nothing() {
        let (_, jwk) = ed25519();
        let known = |_: &str| Some(("EdDSA".to_owned(), jwk.clone()));
        let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "kid": "k1"})),
            b64(json!({"jti": "j"}))
        );
        assert!(verify(&none, known).is_none());
        let unsigned = format!(
            "{}.{}.",
            b64(json!({"alg": "EdDSA", "kid": "k1"})),
            b64(json!({"jti": "j"}))
        );
        assert!(verify(&unsigned, known).is_none());
        assert!(!looks_like_jwt(&format!("a.{}.c", "b".repeat(MAX_JWT_LEN))));
        assert!(!looks_like_jwt("opaque-token"));
    }
}
