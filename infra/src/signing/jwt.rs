//! Compact JWS: encode with a [`Signer`]; decoding only what verifies is
//! the protocol crate's, shared with resource servers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::json;

use super::keypair::{KeyError, Signer};

pub use writ_protocol::jose::{looks_like_jwt, verify, Verified};

pub fn encode(signer: &Signer, typ: &str, claims: &impl Serialize) -> Result<String, KeyError> {
    let header = json!({"alg": signer.alg, "typ": typ, "kid": signer.kid});
    let claims = serde_json::to_vec(claims).map_err(|_| KeyError::Signing)?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = signer.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::keypair::generate;
    use serde_json::Value;

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
