//! R72: a revoked grant is terminal. Whatever revoked it, every command
//! on it afterwards is a typed refusal that records nothing, and replaying
//! an old log that holds a command after the revocation leaves it revoked.

use chrono::Duration;

use super::*;

/// Each way a grant ends up revoked, as the events it leaves in the log.
fn revocations() -> Vec<(&'static str, Vec<GrantEvent>)> {
    let pending = |reason: &str| vec![code_issued(), revoked(reason, &[])];
    let active = |reason: &str| {
        let mut history = redeemed_history();
        history.push(revoked(reason, &["a1"]));
        history
    };
    let mut replayed = redeemed_history();
    replayed.extend([
        GrantEvent::CodeReplayDetected { detected_at: t0() },
        revoked("code_replay", &["a1"]),
    ]);
    let mut reused = redeemed_history();
    reused.extend([
        rotated(),
        GrantEvent::RefreshTokenReuseDetected {
            token_hash: hash("r1"),
            detected_at: t0(),
        },
        revoked("refresh_token_reuse", &["a1"]),
    ]);
    vec![
        ("logout before redemption", pending("logout")),
        ("logout", active("logout")),
        (
            "consent withdrawn, code pending",
            pending("consent_withdrawn"),
        ),
        ("consent withdrawn", active("consent_withdrawn")),
        ("client disabled, code pending", pending("client_disabled")),
        ("client disabled", active("client_disabled")),
        (
            "account disabled, code pending",
            pending("account_disabled"),
        ),
        ("account disabled", active("account_disabled")),
        (
            "password changed, code pending",
            pending("password_changed"),
        ),
        ("password changed", active("password_changed")),
        ("code replay detected", replayed),
        ("refresh reuse detected", reused),
        (
            "RFC 7009 refresh revocation",
            active("refresh_token_revoked"),
        ),
        (
            "code burned by a failed verifier",
            vec![
                code_issued(),
                GrantEvent::CodeBurned {
                    reason: "pkce_verifier_mismatch".into(),
                    burned_at: t0(),
                },
            ],
        ),
    ]
}

/// Every grant command, each as it would succeed on a live grant.
fn commands() -> Vec<(&'static str, GrantCommand)> {
    vec![
        ("redeem the code", redeem(Some(VERIFIER))),
        ("refresh", refresh("r1", None)),
        ("refresh the rotated token", refresh("r2", None)),
        (
            "revoke an access token",
            GrantCommand::RevokeToken {
                client_id: "c1".into(),
                token: TokenRef::AccessJti("a1".into()),
                by: "client:c1".into(),
            },
        ),
        (
            "revoke the refresh token",
            GrantCommand::RevokeToken {
                client_id: "c1".into(),
                token: TokenRef::RefreshHash(hash("r1")),
                by: "client:c1".into(),
            },
        ),
        (
            "revoke the grant",
            GrantCommand::Revoke {
                by: "writ".into(),
                reason: "logout".into(),
            },
        ),
        (
            "start client credentials",
            GrantCommand::GrantClientCredentials {
                gid: "g1".into(),
                client_id: "c1".into(),
                scopes: scopes("api"),
                audience: vec![],
                tokens: tokens(None),
            },
        ),
    ]
}

#[test]
fn every_command_on_a_revoked_grant_is_refused_whatever_revoked_it() {
    for (cause, history) in revocations() {
        for (what, command) in commands() {
            let outcome = std::panic::catch_unwind(|| {
                GrantTest::with(services())
                    .given(history.clone())
                    .when(command)
                    .then_expect_error(GrantError::Revoked)
            });
            assert!(outcome.is_ok(), "after {cause}: {what} was not refused");
        }
    }
}

#[test]
fn a_code_redeemed_after_the_revocation_in_an_old_log_does_not_revive_the_grant() {
    // What a log written before R72 was enforced may hold.
    GrantTest::with(services())
        .given(vec![
            code_issued(),
            revoked("logout", &[]),
            GrantEvent::CodeRedeemed { redeemed_at: t0() },
            access_issued("a1", "openid offline_access"),
            refresh_issued(),
        ])
        .when(refresh("r1", None))
        .then_expect_error(GrantError::Revoked);
}

#[test]
fn revoking_a_pending_grant_denies_it_as_long_as_a_token_of_its_code_could_live() {
    let code_expiry = t0() + Duration::seconds(60);
    GrantTest::with(services())
        .given(vec![code_issued()])
        .when(GrantCommand::Revoke {
            by: "user:s1".into(),
            reason: "logout".into(),
        })
        .then_expect_events(vec![GrantEvent::GrantRevoked {
            by: "user:s1".into(),
            reason: "logout".into(),
            jtis: vec![],
            expires_at: Some(code_expiry + Duration::seconds(TOKEN_TTL_SECS as i64)),
            revoked_at: t0(),
            parties: parties(),
        }]);
}

#[test]
fn a_pending_grant_from_an_old_log_is_denied_until_its_code_expires() {
    let mut old = code_issued();
    if let GrantEvent::CodeIssued { token_ttl_secs, .. } = &mut old {
        *token_ttl_secs = None;
    }
    GrantTest::with(services())
        .given(vec![old])
        .when(GrantCommand::Revoke {
            by: "writ".into(),
            reason: "client_disabled".into(),
        })
        .then_expect_events(vec![GrantEvent::GrantRevoked {
            by: "writ".into(),
            reason: "client_disabled".into(),
            jtis: vec![],
            expires_at: Some(t0() + Duration::seconds(60)),
            revoked_at: t0(),
            parties: parties(),
        }]);
}
