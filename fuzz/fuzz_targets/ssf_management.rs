//! The Shared Signals management bodies a receiver sends (SSF 1.0 §8.1):
//! never a panic; what is accepted keeps its bounds, and a push endpoint
//! accepted is a server-side URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use writ_domain::client::is_server_side_uri;
use writ_domain::ssf_stream::{Delivery, StreamConfig};
use writ_wire::ssf_stream::{
    body, bounded, AskedDelivery, StatusIn, StreamIn, SubjectIn, VerifyIn, LONGEST_TEXT,
};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(stream) = body::<StreamIn>(bytes) {
        if let Some(delivery) = stream.delivery {
            if let Ok(AskedDelivery::Push { endpoint_url, .. }) = delivery.checked() {
                assert!(is_server_side_uri(&endpoint_url));
            }
        }
        let config = StreamConfig {
            delivery: Delivery::Poll,
            events_requested: stream.events_requested,
            description: stream.description,
        };
        if let Ok(config) = bounded(config) {
            assert!(config.description.is_none_or(|d| d.len() <= LONGEST_TEXT));
            assert!(config.events_requested.is_none_or(|e| e.len() <= 64));
        }
    }
    if let Ok(status) = body::<StatusIn>(bytes) {
        if status.checked().is_ok() {
            assert!(status.reason.is_none_or(|r| r.len() <= LONGEST_TEXT));
        }
    }
    if let Ok(subject) = body::<SubjectIn>(bytes) {
        if subject.checked().is_ok() {
            assert!(subject.subject.get("format").is_some());
        }
    }
    if let Ok(verify) = body::<VerifyIn>(bytes) {
        if verify.checked().is_ok() {
            assert!(verify.state.is_none_or(|s| s.len() <= LONGEST_TEXT));
        }
    }
});
