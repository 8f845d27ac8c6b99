//! A log cursor as the revocation feed's `after`, `Last-Event-ID` and a
//! Shared Signals stream's `start_after` carry it: never a panic; one
//! that parses writes out to the very same text, so text order stays log
//! order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use writ_domain::cursor::Cursor;

fuzz_target!(|raw: &str| {
    if let Ok(cursor) = raw.parse::<Cursor>() {
        assert_eq!(cursor.to_string(), raw);
    }
});
