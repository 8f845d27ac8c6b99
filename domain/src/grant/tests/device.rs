//! RFC 8628: a device grant is pending until a person answers; polling
//! before then, after a denial, after expiry, with another client or
//! after redemption is a refusal that records nothing.

use chrono::Duration;

use super::*;

fn started() -> GrantEvent {
    GrantEvent::DeviceAuthorizationStarted {
        gid: "g1".into(),
        client_id: "tv".into(),
        scopes: scopes("openid offline_access"),
        audience: vec!["api".into()],
        device_code_hash: hash("device"),
        request_id: "req".into(),
        issued_at: t0(),
        expires_at: t0() + Duration::seconds(600),
        interval_secs: 5,
        token_ttl_secs: TOKEN_TTL_SECS,
    }
}

fn approved() -> GrantEvent {
    GrantEvent::DeviceAuthorizationApproved {
        sub: "s1".into(),
        auth_time: t0(),
        sid: Some("session".into()),
        approved_at: t0(),
    }
}

fn denied() -> GrantEvent {
    GrantEvent::DeviceAuthorizationDenied {
        sub: "s1".into(),
        denied_at: t0(),
    }
}

fn poll(client_id: &str, code: &str) -> GrantCommand {
    GrantCommand::RedeemDeviceCode {
        client_id: client_id.into(),
        device_code_hash: hash(code),
        tokens: tokens(Some("r1")),
    }
}

fn answer(allow: bool) -> GrantCommand {
    GrantCommand::DecideDevice {
        sub: "s1".into(),
        auth_time: t0(),
        sid: Some("session".into()),
        allow,
    }
}

#[test]
fn a_start_records_the_code_hash_expiry_and_interval() {
    GrantTest::with(services())
        .given_no_previous_events()
        .when(GrantCommand::StartDeviceAuthorization {
            gid: "g1".into(),
            client_id: "tv".into(),
            scopes: scopes("openid offline_access"),
            audience: vec!["api".into()],
            device_code_hash: hash("device"),
            request_id: "req".into(),
            ttl_secs: 600,
            interval_secs: 5,
            token_ttl_secs: TOKEN_TTL_SECS,
        })
        .then_expect_events(vec![started()]);
}

#[test]
fn a_second_start_on_the_stream_is_refused_so_user_codes_stay_unique() {
    GrantTest::with(services())
        .given(vec![started()])
        .when(GrantCommand::StartDeviceAuthorization {
            gid: "g1".into(),
            client_id: "other".into(),
            scopes: scopes("openid"),
            audience: vec![],
            device_code_hash: hash("other"),
            request_id: "req".into(),
            ttl_secs: 600,
            interval_secs: 5,
            token_ttl_secs: TOKEN_TTL_SECS,
        })
        .then_expect_error(GrantError::AlreadyExists);
}

#[test]
fn polling_before_an_answer_is_pending() {
    GrantTest::with(services())
        .given(vec![started()])
        .when(poll("tv", "device"))
        .then_expect_error(GrantError::AuthorizationPending);
}

#[test]
fn an_approval_is_redeemed_once_with_tokens() {
    GrantTest::with(services())
        .given(vec![started()])
        .when(answer(true))
        .then_expect_events(vec![approved()]);
    GrantTest::with(services())
        .given(vec![started(), approved()])
        .when(poll("tv", "device"))
        .then_expect_events(vec![
            GrantEvent::DeviceCodeRedeemed { redeemed_at: t0() },
            access_issued("id-1", "openid offline_access"),
            refresh_issued(),
        ]);
    GrantTest::with(services())
        .given(vec![
            started(),
            approved(),
            GrantEvent::DeviceCodeRedeemed { redeemed_at: t0() },
        ])
        .when(poll("tv", "device"))
        .then_expect_error(GrantError::UnknownCode);
}

#[test]
fn a_denial_is_access_denied_to_its_own_client_only() {
    GrantTest::with(services())
        .given(vec![started()])
        .when(answer(false))
        .then_expect_events(vec![denied()]);
    GrantTest::with(services())
        .given(vec![started(), denied()])
        .when(poll("tv", "device"))
        .then_expect_error(GrantError::DeviceAccessDenied);
    GrantTest::with(services())
        .given(vec![started(), denied()])
        .when(poll("another", "device"))
        .then_expect_error(GrantError::ClientMismatch);
    GrantTest::with(services())
        .given(vec![started(), denied()])
        .when(answer(true))
        .then_expect_error(GrantError::Revoked);
}

#[test]
fn another_clients_code_or_a_wrong_code_is_refused() {
    GrantTest::with(services())
        .given(vec![started(), approved()])
        .when(poll("another", "device"))
        .then_expect_error(GrantError::ClientMismatch);
    GrantTest::with(services())
        .given(vec![started(), approved()])
        .when(poll("tv", "guessed"))
        .then_expect_error(GrantError::UnknownCode);
}

#[test]
fn an_answer_is_given_once_and_not_after_expiry() {
    GrantTest::with(services())
        .given(vec![started(), approved()])
        .when(answer(false))
        .then_expect_error(GrantError::AlreadyDecided);
    let late = services_at(t0() + Duration::seconds(600));
    GrantTest::with(late)
        .given(vec![started()])
        .when(answer(true))
        .then_expect_error(GrantError::DeviceCodeExpired);
    let late = services_at(t0() + Duration::seconds(600));
    GrantTest::with(late)
        .given(vec![started(), approved()])
        .when(poll("tv", "device"))
        .then_expect_error(GrantError::DeviceCodeExpired);
}

#[test]
fn revoking_a_pending_device_grant_denies_what_it_could_have_minted() {
    GrantTest::with(services())
        .given(vec![started()])
        .when(GrantCommand::Revoke {
            by: "admin".into(),
            reason: "client_disabled".into(),
        })
        .then_expect_events(vec![GrantEvent::GrantRevoked {
            by: "admin".into(),
            reason: "client_disabled".into(),
            jtis: vec![],
            expires_at: Some(
                t0() + Duration::seconds(600) + Duration::seconds(TOKEN_TTL_SECS as i64),
            ),
            revoked_at: t0(),
            parties: Some(GrantParties {
                client_id: "tv".into(),
                sub: None,
                audience: vec!["api".into()],
            }),
        }]);
}
