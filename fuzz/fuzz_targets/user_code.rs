//! A user code as a person types it (RFC 8628 §6.1): never a panic; a
//! normalised code shown to a person and typed back is the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use writ_domain::values::user_code::{display, normalize, LENGTH};

fuzz_target!(|typed: &str| {
    if let Some(code) = normalize(typed) {
        assert_eq!(code.len(), LENGTH);
        assert_eq!(normalize(&display(&code)), Some(code));
    }
});
