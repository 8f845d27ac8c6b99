use cqrs_es::test::TestFramework;

use super::*;
use crate::services::fixtures::{services, t0};
use crate::values::Sealed;

type AccountTest = TestFramework<Account>;

fn sealed(text: &str) -> Sealed {
    Sealed(format!("sealed:{text}"))
}

fn create(sub: &str) -> AccountCommand {
    AccountCommand::Create {
        sub: sub.into(),
        username: sealed("alice"),
        email: Some(sealed("alice@example.com")),
        name: None,
        password_hash: sealed("argon2"),
    }
}

fn created(sub: &str) -> AccountEvent {
    AccountEvent::AccountCreated {
        sub: sub.into(),
        username: sealed("alice"),
        email: Some(sealed("alice@example.com")),
        name: None,
        password_hash: sealed("argon2"),
        created_at: t0(),
    }
}

fn disabled() -> AccountEvent {
    AccountEvent::AccountDisabled {
        sub: "s1".into(),
        reason: "r".into(),
        disabled_at: t0(),
    }
}

fn forgotten() -> AccountEvent {
    AccountEvent::AccountForgotten {
        sub: "s1".into(),
        forgotten_at: t0(),
    }
}

#[test]
fn creating_an_account_records_sealed_fields_only() {
    AccountTest::with(services())
        .given_no_previous_events()
        .when(create("s1"))
        .then_expect_events(vec![created("s1")]);
}

#[test]
fn creating_a_taken_username_is_refused() {
    AccountTest::with(services())
        .given(vec![created("s1")])
        .when(create("s2"))
        .then_expect_error(AccountError::AlreadyExists);
}

#[test]
fn a_forgotten_username_is_free_for_a_new_subject() {
    AccountTest::with(services())
        .given(vec![created("s1"), forgotten()])
        .when(create("s2"))
        .then_expect_events(vec![created("s2")]);
}

#[test]
fn changing_the_password_records_the_new_hash() {
    AccountTest::with(services())
        .given(vec![created("s1")])
        .when(AccountCommand::ChangePassword {
            password_hash: sealed("new"),
        })
        .then_expect_events(vec![AccountEvent::PasswordChanged {
            sub: "s1".into(),
            password_hash: sealed("new"),
            changed_at: t0(),
        }]);
}

#[test]
fn changing_the_password_of_a_disabled_account_is_refused() {
    AccountTest::with(services())
        .given(vec![created("s1"), disabled()])
        .when(AccountCommand::ChangePassword {
            password_hash: sealed("new"),
        })
        .then_expect_error(AccountError::Disabled);
}

#[test]
fn updating_claims_records_them() {
    AccountTest::with(services())
        .given(vec![created("s1")])
        .when(AccountCommand::UpdateClaims {
            email: None,
            name: Some(sealed("Alice")),
        })
        .then_expect_events(vec![AccountEvent::ClaimsUpdated {
            sub: "s1".into(),
            email: None,
            name: Some(sealed("Alice")),
            updated_at: t0(),
        }]);
}

#[test]
fn updating_claims_of_a_missing_account_is_refused() {
    AccountTest::with(services())
        .given_no_previous_events()
        .when(AccountCommand::UpdateClaims {
            email: None,
            name: None,
        })
        .then_expect_error(AccountError::NotFound);
}

#[test]
fn disabling_records_the_reason() {
    AccountTest::with(services())
        .given(vec![created("s1")])
        .when(AccountCommand::Disable { reason: "r".into() })
        .then_expect_events(vec![disabled()]);
}

#[test]
fn disabling_twice_is_refused() {
    AccountTest::with(services())
        .given(vec![created("s1"), disabled()])
        .when(AccountCommand::Disable { reason: "r".into() })
        .then_expect_error(AccountError::Disabled);
}

#[test]
fn forgetting_a_disabled_account_is_allowed() {
    AccountTest::with(services())
        .given(vec![created("s1"), disabled()])
        .when(AccountCommand::Forget)
        .then_expect_events(vec![forgotten()]);
}

#[test]
fn forgetting_a_missing_account_is_refused() {
    AccountTest::with(services())
        .given(vec![created("s1"), forgotten()])
        .when(AccountCommand::Forget)
        .then_expect_error(AccountError::NotFound);
}

#[test]
fn enabling_reopens_a_disabled_account_only() {
    AccountTest::with(services())
        .given(vec![created("s1"), disabled()])
        .when(AccountCommand::Enable { reason: "r".into() })
        .then_expect_events(vec![AccountEvent::AccountEnabled {
            sub: "s1".into(),
            reason: "r".into(),
            enabled_at: t0(),
        }]);
    AccountTest::with(services())
        .given(vec![created("s1")])
        .when(AccountCommand::Enable { reason: "r".into() })
        .then_expect_error(AccountError::NotDisabled);
    AccountTest::with(services())
        .given_no_previous_events()
        .when(AccountCommand::Enable { reason: "r".into() })
        .then_expect_error(AccountError::NotFound);
}
