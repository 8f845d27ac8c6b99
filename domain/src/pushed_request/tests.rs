use cqrs_es::test::TestFramework;

use super::*;
use crate::services::fixtures::{services, services_at, t0};

fn parameters() -> AuthorizationParameters {
    AuthorizationParameters {
        single: BTreeMap::from([
            ("response_type".to_owned(), "code".to_owned()),
            ("scope".to_owned(), "openid".to_owned()),
        ]),
        resources: vec!["https://api.example".into()],
    }
}

fn pushed() -> PushedRequestEvent {
    PushedRequestEvent::AuthorizationRequestPushed {
        client_id: "app".into(),
        parameters: parameters(),
        client_auth_method: "client_secret_basic".into(),
        pushed_at: t0(),
        expires_at: t0() + Duration::seconds(60),
    }
}

fn used() -> PushedRequestEvent {
    PushedRequestEvent::PushedRequestUsed {
        client_id: "app".into(),
        used_at: t0(),
    }
}

fn use_by(client_id: &str) -> PushedRequestCommand {
    PushedRequestCommand::Use {
        client_id: client_id.into(),
    }
}

#[test]
fn a_push_records_the_parameters_and_how_the_client_authenticated() {
    TestFramework::<PushedRequest>::with(services())
        .given_no_previous_events()
        .when(PushedRequestCommand::Push {
            client_id: "app".into(),
            parameters: parameters(),
            client_auth_method: "client_secret_basic".into(),
            ttl_secs: 60,
        })
        .then_expect_events(vec![pushed()]);
}

#[test]
fn a_request_uri_is_used_once_by_its_own_client_before_it_expires() {
    TestFramework::<PushedRequest>::with(services())
        .given(vec![pushed()])
        .when(use_by("app"))
        .then_expect_events(vec![used()]);
    TestFramework::<PushedRequest>::with(services())
        .given(vec![pushed(), used()])
        .when(use_by("app"))
        .then_expect_error(PushedRequestError::AlreadyUsed);
    TestFramework::<PushedRequest>::with(services())
        .given(vec![pushed()])
        .when(use_by("other"))
        .then_expect_error(PushedRequestError::OtherClient);
    TestFramework::<PushedRequest>::with(services_at(t0() + Duration::seconds(60)))
        .given(vec![pushed()])
        .when(use_by("app"))
        .then_expect_error(PushedRequestError::Expired);
    TestFramework::<PushedRequest>::with(services())
        .given_no_previous_events()
        .when(use_by("app"))
        .then_expect_error(PushedRequestError::Unknown);
}

#[test]
fn a_reference_is_pushed_once_and_lives_at_least_a_second() {
    let push = |ttl_secs| PushedRequestCommand::Push {
        client_id: "app".into(),
        parameters: parameters(),
        client_auth_method: "none".into(),
        ttl_secs,
    };
    TestFramework::<PushedRequest>::with(services())
        .given(vec![pushed()])
        .when(push(60))
        .then_expect_error(PushedRequestError::AlreadyPushed);
    TestFramework::<PushedRequest>::with(services())
        .given_no_previous_events()
        .when(push(0))
        .then_expect_error(PushedRequestError::ZeroLifetime);
}
