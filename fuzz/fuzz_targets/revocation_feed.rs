//! What the resource-server SDK reads off Writ's revocation feeds: a
//! server-sent-event body, cut into chunks of a size the input picks,
//! and Kafka message payloads (the whole input, and each of its lines).
//! Never a panic; a message applied twice changes the deny-list no more
//! than once.
#![no_main]

use std::convert::Infallible;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use writ_resource_server::{Config, ResourceServer};

fuzz_target!(|bytes: &[u8]| {
    let server = ResourceServer::new(Config::new("https://writ.example", "api"));
    let chunk = 1 + usize::from(bytes.first().copied().unwrap_or_default() % 16);
    let chunks = bytes
        .chunks(chunk)
        .map(|part| Ok::<_, Infallible>(part.to_vec()));
    let (mut last_id, mut reconnect) = (None, Duration::from_secs(1));
    let _ = futures::executor::block_on(writ_resource_server::sse::apply_events(
        &server,
        futures::stream::iter(chunks),
        &mut last_id,
        &mut reconnect,
    ));
    for payload in std::iter::once(bytes).chain(bytes.split(|b| *b == b'\n')) {
        if server.apply_payload(payload).is_ok() {
            let entries = server.denied_entries();
            assert!(server.apply_payload(payload).is_ok());
            assert_eq!(server.denied_entries(), entries);
        }
    }
});
