//! Authorization codes: issuing, redeeming, replay, expiry, binding and
//! PKCE.

use chrono::Duration;

use super::*;

/// A redemption with the right verifier and no refresh token, varying
/// what a test varies: the client, the code and the redirect URI.
fn redeem_by(client_id: &str, code: &str, redirect_uri: Option<&str>) -> GrantCommand {
    GrantCommand::RedeemCode {
        client_id: client_id.into(),
        code_hash: hash(code),
        redirect_uri: redirect_uri.map(uri),
        verifier: Some(VERIFIER.into()),
        tokens: tokens(None),
    }
}

#[test]
fn issuing_a_code_records_its_hash_challenge_and_expiry() {
    GrantTest::with(services())
        .given_no_previous_events()
        .when(GrantCommand::IssueCode {
            gid: "g1".into(),
            client_id: "c1".into(),
            sub: "s1".into(),
            scopes: scopes("openid offline_access"),
            audience: vec!["api".into()],
            redirect_uri: uri("https://app.example/cb"),
            code_hash: hash("code"),
            challenge: challenge(),
            nonce: Some("n".into()),
            request_id: "req".into(),
            code_ttl_secs: 60,
            auth_time: Some(t0()),
            sid: Some("session".into()),
            redirect_uri_defaulted: false,
            token_ttl_secs: TOKEN_TTL_SECS,
            dpop_jkt: None,
        })
        .then_expect_events(vec![code_issued()]);
}

#[test]
fn issuing_a_code_on_an_existing_grant_is_refused() {
    GrantTest::with(services())
        .given(vec![code_issued()])
        .when(GrantCommand::GrantClientCredentials {
            gid: "g1".into(),
            client_id: "c1".into(),
            scopes: scopes("api"),
            audience: vec![],
            tokens: tokens(None),
        })
        .then_expect_error(GrantError::AlreadyExists);
}

#[test]
fn redeeming_a_code_issues_access_and_refresh_tokens() {
    GrantTest::with(services())
        .given(vec![code_issued()])
        .when(redeem(Some(VERIFIER)))
        .then_expect_events(vec![
            GrantEvent::CodeRedeemed { redeemed_at: t0() },
            access_issued("id-1", "openid offline_access"),
            refresh_issued(),
        ]);
}

#[test]
fn redeeming_a_code_twice_revokes_the_grant_and_the_winners_tokens() {
    GrantTest::with(services())
        .given(redeemed_history())
        .when(redeem(Some(VERIFIER)))
        .then_expect_events(vec![
            GrantEvent::CodeReplayDetected { detected_at: t0() },
            revoked("code_replay", &["a1"]),
        ]);
}

#[test]
fn replaying_a_code_of_a_revoked_grant_records_nothing_more() {
    let mut history = redeemed_history();
    history.push(revoked("code_replay", &["a1"]));
    GrantTest::with(services())
        .given(history)
        .when(redeem(Some(VERIFIER)))
        .then_expect_error(GrantError::Revoked);
}

#[test]
fn an_unknown_code_is_refused() {
    GrantTest::with(services())
        .given(vec![code_issued()])
        .when(redeem_by("c1", "other", Some("https://app.example/cb")))
        .then_expect_error(GrantError::UnknownCode);
}

#[test]
fn a_code_is_bound_to_its_client() {
    GrantTest::with(services())
        .given(vec![code_issued()])
        .when(redeem_by("c2", "code", Some("https://app.example/cb")))
        .then_expect_error(GrantError::ClientMismatch);
}

#[test]
fn an_expired_code_is_refused() {
    GrantTest::with(services_at(t0() + Duration::seconds(60)))
        .given(vec![code_issued()])
        .when(redeem(Some(VERIFIER)))
        .then_expect_error(GrantError::CodeExpired);
}

#[test]
fn a_different_redirect_uri_is_refused() {
    GrantTest::with(services())
        .given(vec![code_issued()])
        .when(redeem_by("c1", "code", Some("https://app.example/cb/")))
        .then_expect_error(GrantError::RedirectUriMismatch);
}

#[test]
fn a_wrong_verifier_burns_the_code() {
    GrantTest::with(services())
        .given(vec![code_issued()])
        .when(redeem(Some(&"x".repeat(43))))
        .then_expect_events(vec![GrantEvent::CodeBurned {
            reason: "pkce_verifier_mismatch".into(),
            burned_at: t0(),
        }]);
}

#[test]
fn a_missing_verifier_burns_the_code() {
    GrantTest::with(services())
        .given(vec![code_issued()])
        .when(redeem(None))
        .then_expect_events(vec![GrantEvent::CodeBurned {
            reason: "pkce_verifier_missing".into(),
            burned_at: t0(),
        }]);
}

#[test]
fn a_verifier_for_a_code_without_challenge_is_a_downgrade_and_burns_it() {
    let GrantEvent::CodeIssued {
        gid,
        client_id,
        sub,
        scopes,
        audience,
        redirect_uri,
        code_hash,
        nonce,
        request_id,
        issued_at,
        expires_at,
        auth_time,
        sid,
        redirect_uri_defaulted,
        token_ttl_secs,
        ..
    } = code_issued()
    else {
        unreachable!("fixture is a CodeIssued")
    };
    let without_challenge = GrantEvent::CodeIssued {
        gid,
        client_id,
        sub,
        scopes,
        audience,
        redirect_uri,
        code_hash,
        challenge: None,
        nonce,
        request_id,
        issued_at,
        expires_at,
        auth_time,
        sid,
        redirect_uri_defaulted,
        token_ttl_secs,
        dpop_jkt: None,
    };
    GrantTest::with(services())
        .given(vec![without_challenge])
        .when(redeem(Some(VERIFIER)))
        .then_expect_events(vec![GrantEvent::CodeBurned {
            reason: "pkce_downgrade".into(),
            burned_at: t0(),
        }]);
}

#[test]
fn a_burnt_code_cannot_be_redeemed() {
    GrantTest::with(services())
        .given(vec![
            code_issued(),
            GrantEvent::CodeBurned {
                reason: "x".into(),
                burned_at: t0(),
            },
        ])
        .when(redeem(Some(VERIFIER)))
        .then_expect_error(GrantError::Revoked);
}

#[test]
fn a_token_request_without_redirect_uri_is_refused_when_the_authorization_request_had_one() {
    GrantTest::with(services())
        .given(vec![code_issued()])
        .when(redeem_by("c1", "code", None))
        .then_expect_error(GrantError::RedirectUriMismatch);
}

#[test]
fn a_defaulted_redirect_uri_need_not_be_repeated() {
    let mut issued = code_issued();
    if let GrantEvent::CodeIssued {
        redirect_uri_defaulted,
        ..
    } = &mut issued
    {
        *redirect_uri_defaulted = true;
    }
    let events = GrantTest::with(services())
        .given(vec![issued])
        .when(redeem_by("c1", "code", None))
        .inspect_result();
    let events = events.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(events[0], GrantEvent::CodeRedeemed { .. }));
}
