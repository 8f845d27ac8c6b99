//! The JSON an API reads from Writ: a revocation message (Kafka and the
//! feed), an access token's claims, a status list token's claims. Never a
//! panic; a message that decodes writes out to one that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use writ_protocol::revocation::Revocation;
use writ_protocol::status_list::StatusListClaims;
use writ_protocol::AccessTokenClaims;

fn round_trip<M: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(message) = serde_json::from_slice::<M>(data) {
        let written = serde_json::to_vec(&message).expect("a message writes out");
        assert_eq!(serde_json::from_slice::<M>(&written).ok(), Some(message));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((which, message)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => round_trip::<Revocation>(message),
        1 => round_trip::<AccessTokenClaims>(message),
        _ => round_trip::<StatusListClaims>(message),
    }
});
