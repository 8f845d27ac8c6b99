//! A compact JWS presented as an access token, a status list or a SET,
//! checked against a JWKS key: never a panic, and nothing the fuzzer makes
//! verifies (it cannot sign).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use writ_protocol::jose::{looks_like_jwt, verify, verify_up_to, MAX_STATUS_LIST_LEN};

fn key(kid: &str) -> Option<(String, Value)> {
    // A P-256 public key (RFC 7515 appendix A.3's).
    (kid == "k").then(|| {
        (
            "ES256".to_owned(),
            json!({
                "kty": "EC", "crv": "P-256", "kid": "k", "alg": "ES256",
                "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            }),
        )
    })
}

fuzz_target!(|token: &str| {
    let _ = looks_like_jwt(token);
    assert!(verify(token, key).is_none());
    assert!(verify_up_to(MAX_STATUS_LIST_LEN, token, key).is_none());
});
