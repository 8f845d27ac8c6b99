//! Compact JWS verification (RFC 7515) against the public keys Writ
//! publishes in its JWKS: what Writ checks its own tokens with and what an
//! API checks them with, so the two can never disagree.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature;
use serde_json::Value;

/// Tokens longer than this are not Writ's; refuse before any parsing.
const MAX_JWT_LEN: usize = 8 * 1024;

/// Whether a presented token is shaped like a JWS (three dot-separated parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.len() <= MAX_JWT_LEN && token.split('.').count() == 3
}

pub struct Verified {
    pub header: Value,
    pub claims: Value,
}

/// The header and claims of a token whose signature verifies under the key
/// its `kid` names, with that key's algorithm. `alg: none`, an algorithm
/// other than the key's, or an unknown `kid` verify nothing.
pub fn verify(token: &str, key_for: impl Fn(&str) -> Option<(String, Value)>) -> Option<Verified> {
    if !looks_like_jwt(token) {
        return None;
    }
    let mut parts = token.split('.');
    let (header_b64, claims_b64, sig_b64) = (parts.next()?, parts.next()?, parts.next()?);
    let json_of = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let header = json_of(header_b64)?;
    let kid = header["kid"].as_str()?;
    let (alg, jwk) = key_for(kid)?;
    if header["alg"].as_str() != Some(alg.as_str()) {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).ok()?;
    let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
    if !verify_signature(&jwk, &alg, signing_input.as_bytes(), &sig) {
        return None;
    }
    Some(Verified {
        header,
        claims: json_of(claims_b64)?,
    })
}

/// Whether `sig` is `alg`'s signature of `message` under the public JWK
/// (RFC 7518 §3.4 fixed-size ECDSA, RFC 8037 Ed25519, PKCS#1 v1.5 RSA).
pub fn verify_signature(public_jwk: &Value, alg: &str, message: &[u8], sig: &[u8]) -> bool {
    let field = |name: &str| {
        public_jwk[name]
            .as_str()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
    };
    match alg {
        "ES256" => match (field("x"), field("y")) {
            (Some(x), Some(y)) => {
                let mut point = vec![4u8];
                point.extend(x);
                point.extend(y);
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            _ => false,
        },
        "EdDSA" => field("x").is_some_and(|x| {
            signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok()
        }),
        "RS256" => match (field("n"), field("e")) {
            (Some(n), Some(e)) => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            _ => false,
        },
        _ => false,
    }
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
