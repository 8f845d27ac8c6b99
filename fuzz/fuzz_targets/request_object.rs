//! A request object's claims once its signature verified (RFC 9101),
//! under each `typ` a header may carry: never a panic; a request object
//! that is read is the client's own, addressed to the issuer, expires
//! within the hour, holds no nested request, and yields a form naming
//! the client.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use writ_wire::request_object::{names_audience, parameters};

const NOW: i64 = 1_800_000_000;

fuzz_target!(|bytes: &[u8]| {
    let Ok(claims) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    for typ in [
        None,
        Some("jwt"),
        Some("oauth-authz-req+jwt"),
        Some("client-authentication+jwt"),
    ] {
        let Ok(form) = parameters(&claims, typ, "app", "https://writ.example/", NOW) else {
            continue;
        };
        assert_ne!(typ, Some("client-authentication+jwt"));
        assert_eq!(claims["iss"], "app");
        assert_ne!(claims["sub"], "app");
        assert!(names_audience(&claims, |aud| aud == "https://writ.example"));
        assert!(claims["exp"]
            .as_i64()
            .is_some_and(|exp| exp.saturating_sub(NOW) <= 3600));
        assert!(claims.get("request").is_none() && claims.get("request_uri").is_none());
        assert_eq!(form.get("client_id"), Some("app"));
    }
});
