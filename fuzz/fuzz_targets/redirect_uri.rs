//! A registered redirect URI (RFC 9700 §4.1.3): never a panic, and what
//! is accepted once is accepted again, unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use writ_domain::values::RedirectUri;

fuzz_target!(|raw: &str| {
    if let Ok(uri) = RedirectUri::parse(raw) {
        assert_eq!(uri.as_str(), raw);
        assert_eq!(RedirectUri::parse(uri.as_str()), Ok(uri));
    }
});
