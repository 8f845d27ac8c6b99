//! A stored event's payload as each aggregate decodes it: a corrupted or
//! forged payload is an error, never a panic; one that decodes writes out
//! to JSON that decodes to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use writ_domain::account::AccountEvent;
use writ_domain::backchannel_logout::BackchannelLogoutEvent;
use writ_domain::client::ClientEvent;
use writ_domain::client_assertion::ClientAssertionEvent;
use writ_domain::consent::ConsentEvent;
use writ_domain::dpop_proof::DpopProofEvent;
use writ_domain::grant::GrantEvent;
use writ_domain::login::LoginEvent;
use writ_domain::pushed_request::PushedRequestEvent;
use writ_domain::session::SessionEvent;
use writ_domain::signing_key::SigningKeyEvent;
use writ_domain::ssf_stream::SsfStreamEvent;
use writ_domain::status_list::StatusListEvent;

fn round_trip<E: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(payload: &[u8]) {
    if let Ok(event) = serde_json::from_slice::<E>(payload) {
        let written = serde_json::to_vec(&event).expect("an event writes out");
        assert_eq!(serde_json::from_slice::<E>(&written).ok(), Some(event));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((which, payload)) = data.split_first() else {
        return;
    };
    match which % 13 {
        0 => round_trip::<ClientEvent>(payload),
        1 => round_trip::<AccountEvent>(payload),
        2 => round_trip::<LoginEvent>(payload),
        3 => round_trip::<ConsentEvent>(payload),
        4 => round_trip::<GrantEvent>(payload),
        5 => round_trip::<SigningKeyEvent>(payload),
        6 => round_trip::<SessionEvent>(payload),
        7 => round_trip::<PushedRequestEvent>(payload),
        8 => round_trip::<ClientAssertionEvent>(payload),
        9 => round_trip::<DpopProofEvent>(payload),
        10 => round_trip::<BackchannelLogoutEvent>(payload),
        11 => round_trip::<SsfStreamEvent>(payload),
        _ => round_trip::<StatusListEvent>(payload),
    }
});
