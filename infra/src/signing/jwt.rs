//! Compact JWS: encode with a [`Signer`], decode only what verifies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::keypair::{self, KeyError, Signer};

/// Tokens longer than this are not ours; refuse before any parsing.
const MAX_JWT_LEN: usize = 8 * 1024;

pub fn encode(signer: &Signer, typ: &str, claims: &Value) -> Result<String, KeyError> {
    let header = json!({"alg": signer.alg, "typ": typ, "kid": signer.kid});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = signer.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

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
    if !keypair::verify(&jwk, &alg, signing_input.as_bytes(), &sig) {
        return None;
    }
    Some(Verified {
        header,
        claims: json_of(claims_b64)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::keypair::generate;

    fn signer(alg: &str) -> (Signer, Value) {
        let g = generate(alg).unwrap_or_else(|e| panic!("{e}"));
        let s = Signer::from_pkcs8(&g.kid, alg, &g.pkcs8).unwrap_or_else(|e| panic!("{e}"));
        (s, g.public_jwk)
    }

    #[test]
    fn a_token_verifies_under_its_key_and_nothing_else() {
        let (es, es_jwk) = signer("ES256");
        let token = encode(&es, "at+jwt", &json!({"jti": "j1"})).unwrap_or_else(|e| panic!("{e}"));
        let known = |kid: &str| (kid == es.kid).then(|| ("ES256".to_owned(), es_jwk.clone()));
        let verified = verify(&token, known).unwrap_or_else(|| panic!("did not verify"));
        assert_eq!(verified.claims["jti"], "j1");
        assert_eq!(verified.header["typ"], "at+jwt");
        assert!(verify(&token, |_| None).is_none(), "unknown kid");
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap_or(0) + 3, 'A');
        assert!(verify(&tampered, known).is_none(), "tampered claims");
    }

    #[test]
    fn alg_none_and_a_swapped_alg_are_refused() {
        let (es, es_jwk) = signer("ES256");
        let known = |_: &str| Some(("ES256".to_owned(), es_jwk.clone()));
        let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "kid": es.kid})),
            b64(json!({"jti": "j"}))
        );
        assert!(verify(&none, known).is_none());
        let (ed, _) = signer("EdDSA");
        let ed_token = encode(&ed, "at+jwt", &json!({})).unwrap_or_else(|e| panic!("{e}"));
        assert!(verify(&ed_token, known).is_none());
    }
}
