use cqrs_es::test::TestFramework;

use super::*;
use crate::services::fixtures::{services, t0};
use crate::values::ScopeSet;

type ConsentTest = TestFramework<Consent>;

fn scopes(raw: &str) -> ScopeSet {
    ScopeSet::parse(raw).unwrap_or_default()
}

fn grant(raw: &str) -> ConsentCommand {
    ConsentCommand::Grant {
        sub: "s1".into(),
        client_id: "c1".into(),
        scopes: scopes(raw),
        request_id: "req".into(),
    }
}

fn granted(raw: &str) -> ConsentEvent {
    ConsentEvent::ConsentGranted {
        sub: "s1".into(),
        client_id: "c1".into(),
        scopes: scopes(raw),
        request_id: "req".into(),
        granted_at: t0(),
    }
}

fn withdrawn() -> ConsentEvent {
    ConsentEvent::ConsentWithdrawn {
        sub: "s1".into(),
        client_id: "c1".into(),
        by: "s1".into(),
        reason: "r".into(),
        withdrawn_at: t0(),
    }
}

#[test]
fn granting_consent_records_the_scopes_and_request() {
    ConsentTest::with(services())
        .given_no_previous_events()
        .when(grant("openid profile"))
        .then_expect_events(vec![granted("openid profile")]);
}

#[test]
fn granting_more_scopes_extends_to_the_union() {
    ConsentTest::with(services())
        .given(vec![granted("openid")])
        .when(grant("email"))
        .then_expect_events(vec![ConsentEvent::ConsentExtended {
            sub: "s1".into(),
            client_id: "c1".into(),
            scopes: scopes("email openid"),
            request_id: "req".into(),
            extended_at: t0(),
        }]);
}

#[test]
fn granting_scopes_already_held_is_refused() {
    ConsentTest::with(services())
        .given(vec![granted("openid profile")])
        .when(grant("openid"))
        .then_expect_error(ConsentError::AlreadyCovered);
}

#[test]
fn granting_no_scopes_is_refused() {
    ConsentTest::with(services())
        .given_no_previous_events()
        .when(grant(""))
        .then_expect_error(ConsentError::NoScopes);
}

#[test]
fn withdrawing_records_who_and_why() {
    ConsentTest::with(services())
        .given(vec![granted("openid")])
        .when(ConsentCommand::Withdraw {
            by: "s1".into(),
            reason: "r".into(),
        })
        .then_expect_events(vec![withdrawn()]);
}

#[test]
fn withdrawing_without_consent_is_refused() {
    ConsentTest::with(services())
        .given(vec![granted("openid"), withdrawn()])
        .when(ConsentCommand::Withdraw {
            by: "s1".into(),
            reason: "again".into(),
        })
        .then_expect_error(ConsentError::NotActive);
}

#[test]
fn consent_can_be_granted_again_after_withdrawal() {
    ConsentTest::with(services())
        .given(vec![granted("openid"), withdrawn()])
        .when(grant("openid"))
        .then_expect_events(vec![granted("openid")]);
}
