//! A `private_key_jwt` client assertion or request object as a client
//! sends it (RFC 7523, RFC 9101): never a panic; the `sub` read before
//! verification is a non-empty string; nothing the fuzzer makes verifies
//! under the client's JWKS (it cannot sign); and claims the checks accept
//! name the client as `iss` and `sub`, this server as `aud`, a `jti`, and
//! expire within ten minutes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use writ_wire::client_jwt::{
    assertion_subject, check_assertion, header, not_yet_valid, verified_claims, Audience,
};
use writ_wire::request_object::names_audience;

const NOW: i64 = 1_800_000_000;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Some(sub) = assertion_subject(text) {
        assert!(!sub.is_empty());
    }
    if let Ok(parsed) = header(text) {
        // A P-256 public key (RFC 7515 appendix A.3's).
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k", "use": "sig",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        }]});
        assert!(verified_claims(text, &jwks, &parsed, &["exp"]).is_none());
    }
    let Ok(claims) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let _ = not_yet_valid(&claims, NOW);
    for fapi2 in [false, true] {
        let audience = Audience {
            issuer: "https://writ.example",
            public_base: "https://api.writ.example",
            path: "/token",
            fapi2,
        };
        for typ in [
            None,
            Some("client-authentication+jwt"),
            Some("oauth-authz-req+jwt"),
        ] {
            if check_assertion(typ, &claims, "app", &audience, NOW).is_err() {
                continue;
            }
            assert_ne!(typ, Some("oauth-authz-req+jwt"));
            assert_eq!(
                (claims["iss"].as_str(), claims["sub"].as_str()),
                (Some("app"), Some("app"))
            );
            assert!(names_audience(&claims, |aud| aud.starts_with("https://")));
            assert!(!fapi2 || claims["aud"] == "https://writ.example");
            assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()));
            assert!(claims["exp"]
                .as_i64()
                .is_some_and(|exp| exp.saturating_sub(NOW) <= 600));
        }
    }
});
