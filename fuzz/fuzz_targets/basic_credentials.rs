//! An `Authorization: Basic` header (RFC 6749 §2.3.1): never a panic; an
//! id and secret that parse, encoded again as the RFC says, parse to the
//! same pair.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use writ_wire::credentials::basic;

fuzz_target!(|header: &str| {
    if let Ok((id, secret)) = basic(header) {
        assert!(!id.is_empty());
        let encode =
            |part: &str| form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
        let again = format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", encode(&id), encode(&secret)))
        );
        assert_eq!(basic(&again), Ok((id, secret)));
    }
});
