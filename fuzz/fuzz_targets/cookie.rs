//! `Cookie` headers: never a panic; a value is found only as one Writ
//! could have set (1 to 64 URL-safe characters) and only when sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use writ_wire::cookie;

fuzz_target!(|headers: Vec<&str>| {
    for name in ["writ_browser", "writ_session"] {
        if let Some(value) = cookie::value(headers.iter().copied(), name) {
            assert!((1..=64).contains(&value.len()));
            assert!(value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            let sent = format!("{name}={value}");
            assert!(headers.iter().any(|header| header.contains(&sent)));
        }
    }
});
