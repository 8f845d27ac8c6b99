//! A DPoP proof (RFC 9449 §4.3) from the `DPoP` header: never a panic,
//! and a proof the fuzzer made never passes (its signature would have to
//! verify under the key it carries, and the request match).
#![no_main]

use libfuzzer_sys::fuzz_target;
use writ_protocol::dpop::{verify, Expected};

fuzz_target!(|proof: &str| {
    let expected = Expected {
        method: "POST",
        url: "https://writ.example/token",
        access_token: Some("an-access-token"),
        now: 1_800_000_000,
        max_age_secs: 60,
        max_skew_secs: 5,
    };
    let _ = verify(proof, &expected);
});
