//! The catalogue of every event the log may hold, by aggregate type, event
//! type and version. Readers that meet anything else stop instead of
//! skipping it silently.

use cqrs_es::Aggregate;

use crate::account::{Account, AccountEvent};
use crate::client::{Client, ClientEvent};
use crate::consent::{Consent, ConsentEvent};
use crate::grant::{Grant, GrantEvent};
use crate::login::{LoginDay, LoginEvent};
use crate::session::{Session, SessionEvent};
use crate::signing_key::{SigningKey, SigningKeyEvent};
use crate::EVENT_VERSION_1;

const CATALOGUE: &[(&str, &[&str])] = &[
    (Client::TYPE, ClientEvent::TYPES),
    (Account::TYPE, AccountEvent::TYPES),
    (LoginDay::TYPE, LoginEvent::TYPES),
    (Consent::TYPE, ConsentEvent::TYPES),
    (Grant::TYPE, GrantEvent::TYPES),
    (SigningKey::TYPE, SigningKeyEvent::TYPES),
    (Session::TYPE, SessionEvent::TYPES),
];

pub fn is_known(aggregate_type: &str, event_type: &str, event_version: &str) -> bool {
    event_version == EVENT_VERSION_1
        && CATALOGUE
            .iter()
            .any(|(aggregate, events)| *aggregate == aggregate_type && events.contains(&event_type))
}

pub fn aggregate_types() -> impl Iterator<Item = &'static str> {
    CATALOGUE.iter().map(|(aggregate, _)| *aggregate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_events_are_recognised_and_others_are_not() {
        assert!(is_known("Grant", "CodeIssued", "1.0"));
        assert!(!is_known("Grant", "CodeIssued", "2.0"));
        assert!(!is_known("Grant", "ClientRegistered", "1.0"));
        assert!(!is_known("Nope", "CodeIssued", "1.0"));
    }
}
