//! A `scope` parameter (RFC 6749 §3.3): never a panic; a parsed set
//! written out parses to the same set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use writ_domain::values::ScopeSet;

fuzz_target!(|raw: &str| {
    if let Ok(scopes) = ScopeSet::parse(raw) {
        assert_eq!(ScopeSet::parse(&scopes.to_string()), Ok(scopes));
    }
});
