//! A client's registered keys and key URL (RFC 7591 `jwks`, `jwks_uri`):
//! never a panic, whatever JSON or text arrives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use writ_domain::client::{check_jwks, check_jwks_uri, is_server_side_uri};

fuzz_target!(|data: &[u8]| {
    if let Ok(jwks) = serde_json::from_slice(data) {
        let _ = check_jwks(&jwks);
    }
    if let Ok(uri) = std::str::from_utf8(data) {
        let _ = check_jwks_uri(uri);
        let _ = is_server_side_uri(uri);
    }
});
