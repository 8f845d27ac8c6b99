//! The catalogue of every event the log may hold, by aggregate type, event
//! type and version. Readers that meet anything else stop instead of
//! skipping it silently.

use cqrs_es::Aggregate;

use crate::account::{Account, AccountEvent};
use crate::backchannel_logout::{BackchannelLogout, BackchannelLogoutEvent};
use crate::client::{Client, ClientEvent};
use crate::client_assertion::{ClientAssertion, ClientAssertionEvent};
use crate::consent::{Consent, ConsentEvent};
use crate::dpop_proof::{DpopProof, DpopProofEvent};
use crate::grant::{Grant, GrantEvent, REVOCATIONS_VERSION};
use crate::login::{LoginDay, LoginEvent};
use crate::pushed_request::{PushedRequest, PushedRequestEvent};
use crate::session::{Session, SessionEvent};
use crate::signing_key::{SigningKey, SigningKeyEvent};
use crate::ssf_stream::{SsfStream, SsfStreamEvent};
use crate::status_list::{StatusList, StatusListEvent};
use crate::EVENT_VERSION_1;

const CATALOGUE: &[(&str, &[&str])] = &[
    (Client::TYPE, ClientEvent::TYPES),
    (Account::TYPE, AccountEvent::TYPES),
    (LoginDay::TYPE, LoginEvent::TYPES),
    (Consent::TYPE, ConsentEvent::TYPES),
    (Grant::TYPE, GrantEvent::TYPES),
    (SigningKey::TYPE, SigningKeyEvent::TYPES),
    (Session::TYPE, SessionEvent::TYPES),
    (PushedRequest::TYPE, PushedRequestEvent::TYPES),
    (ClientAssertion::TYPE, ClientAssertionEvent::TYPES),
    (DpopProof::TYPE, DpopProofEvent::TYPES),
    (BackchannelLogout::TYPE, BackchannelLogoutEvent::TYPES),
    (SsfStream::TYPE, SsfStreamEvent::TYPES),
    (StatusList::TYPE, StatusListEvent::TYPES),
];

/// Every type is known at 1.0; the grant's revocations also at 1.1. That
/// change only added optional fields, so the upcast of a 1.0 payload is
/// its decoding: the new fields read as unknown (`None`), and its readers
/// look them up instead. A stored payload is never rewritten: its hash is
/// in the chain.
pub fn is_known(aggregate_type: &str, event_type: &str, event_version: &str) -> bool {
    let version_known = event_version == EVENT_VERSION_1
        || (event_version == REVOCATIONS_VERSION
            && aggregate_type == Grant::TYPE
            && GrantEvent::VERSION_1_1.contains(&event_type));
    version_known
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
        assert!(
            is_known("Grant", "GrantRevoked", "1.0"),
            "written before 1.1"
        );
        assert!(is_known("Grant", "GrantRevoked", "1.1"));
        assert!(
            !is_known("Grant", "CodeIssued", "1.1"),
            "only the revocations moved"
        );
    }

    #[test]
    fn a_grant_revocation_of_version_1_0_reads_as_1_1_with_its_parties_unknown() {
        use crate::grant::GrantParties;
        use cqrs_es::DomainEvent;
        // As 3b5fd0e wrote it (tests/fixtures/3b5fd0e).
        let stored = serde_json::json!({"GrantRevoked": {
            "by": "user:s1", "reason": "logout", "jtis": ["j1"],
            "expires_at": "2026-12-04T10:05:00Z", "revoked_at": "2026-12-04T10:00:00Z"
        }});
        assert!(is_known("Grant", "GrantRevoked", "1.0"));
        let event: GrantEvent = serde_json::from_value(stored).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&event, GrantEvent::GrantRevoked { parties: None, jtis, .. } if jtis == &["j1"])
        );
        assert_eq!(
            event.event_version(),
            "1.1",
            "written again, it would be 1.1"
        );
        // A 1.1 event keeps its parties through a round trip.
        let GrantEvent::GrantRevoked {
            by,
            reason,
            jtis,
            expires_at,
            revoked_at,
            ..
        } = event
        else {
            panic!("a grant revocation");
        };
        let current = GrantEvent::GrantRevoked {
            by,
            reason,
            jtis,
            expires_at,
            revoked_at,
            parties: Some(GrantParties {
                client_id: "app".into(),
                sub: Some("s1".into()),
                audience: vec!["api".into()],
            }),
        };
        let text = serde_json::to_value(&current).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text["GrantRevoked"]["parties"]["client_id"], "app");
        let back: GrantEvent = serde_json::from_value(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, current);
    }
}
