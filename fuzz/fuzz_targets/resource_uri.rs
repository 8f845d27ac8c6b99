//! An RFC 8707 resource indicator: never a panic, and what is accepted
//! once is accepted again, unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use writ_domain::values::ResourceUri;

fuzz_target!(|raw: &str| {
    if let Ok(uri) = ResourceUri::parse(raw) {
        assert_eq!(uri.as_str(), raw);
        assert_eq!(ResourceUri::parse(uri.as_str()), Ok(uri));
    }
});
