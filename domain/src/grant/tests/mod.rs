//! Given/when/then for every grant command: fixtures here, with the
//! client-credentials, password, refresh and revocation paths; the code
//! paths are in `code.rs`.

mod code;
mod device;
mod dpop;
mod exchange;
mod terminal;

use chrono::Duration;
use cqrs_es::test::TestFramework;

use super::*;
use crate::services::fixtures::{services, services_at, t0};
use crate::values::{CodeChallenge, RedirectUri, ScopeSet, SecretHash};

pub(super) type GrantTest = TestFramework<Grant>;

pub(super) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// What `IssueCode` records as the longest a minted token could outlive
/// the code.
pub(super) const TOKEN_TTL_SECS: u64 = 86_700;
pub(super) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub(super) fn hash(tag: &str) -> SecretHash {
    SecretHash(format!("hash-{tag}"))
}

pub(super) fn scopes(raw: &str) -> ScopeSet {
    ScopeSet::parse(raw).unwrap_or_default()
}

pub(super) fn uri(raw: &str) -> RedirectUri {
    RedirectUri::parse(raw).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn challenge() -> Option<CodeChallenge> {
    CodeChallenge::parse_s256(CHALLENGE).ok()
}

pub(super) fn tokens(refresh: Option<&str>) -> TokenRequest {
    TokenRequest {
        access_ttl_secs: 300,
        opaque_access_hash: None,
        refresh: refresh.map(|tag| RefreshRequest {
            token_hash: hash(tag),
            idle_ttl_secs: 3_600,
            family_ttl_secs: 86_400,
            jkt: None,
        }),
        audience: None,
        dpop_jkt: None,
        status: None,
    }
}

pub(super) fn code_issued() -> GrantEvent {
    GrantEvent::CodeIssued {
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
        issued_at: t0(),
        expires_at: t0() + Duration::seconds(60),
        auth_time: Some(t0()),
        sid: Some("session".into()),
        redirect_uri_defaulted: false,
        token_ttl_secs: Some(TOKEN_TTL_SECS),
        dpop_jkt: None,
    }
}

pub(super) fn redeem(verifier: Option<&str>) -> GrantCommand {
    GrantCommand::RedeemCode {
        client_id: "c1".into(),
        code_hash: hash("code"),
        redirect_uri: Some(uri("https://app.example/cb")),
        verifier: verifier.map(str::to_owned),
        tokens: tokens(Some("r1")),
    }
}

pub(super) fn access_issued(jti: &str, raw_scopes: &str) -> GrantEvent {
    GrantEvent::AccessTokenIssued {
        jti: jti.into(),
        token_hash: None,
        scopes: scopes(raw_scopes),
        issued_at: t0(),
        expires_at: t0() + Duration::seconds(300),
        audience: None,
        jkt: None,
        status: None,
    }
}

pub(super) fn refresh_issued() -> GrantEvent {
    GrantEvent::RefreshTokenIssued {
        token_hash: hash("r1"),
        issued_at: t0(),
        idle_expires_at: t0() + Duration::seconds(3_600),
        family_expires_at: t0() + Duration::seconds(86_400),
        jkt: None,
    }
}

pub(super) fn redeemed_history() -> Vec<GrantEvent> {
    vec![
        code_issued(),
        GrantEvent::CodeRedeemed { redeemed_at: t0() },
        access_issued("a1", "openid offline_access"),
        refresh_issued(),
    ]
}

pub(super) fn rotated() -> GrantEvent {
    GrantEvent::RefreshTokenRotated {
        previous_hash: hash("r1"),
        token_hash: hash("r2"),
        rotated_at: t0(),
        idle_expires_at: t0() + Duration::seconds(3_600),
        jkt: None,
    }
}

/// The parties of the grant [`code_issued`] begins.
pub(super) fn parties() -> Option<GrantParties> {
    Some(GrantParties {
        client_id: "c1".into(),
        sub: Some("s1".into()),
        audience: vec!["api".into()],
    })
}

pub(super) fn revoked(reason: &str, jtis: &[&str]) -> GrantEvent {
    GrantEvent::GrantRevoked {
        by: "writ".into(),
        reason: reason.into(),
        jtis: jtis.iter().map(|j| (*j).to_owned()).collect(),
        expires_at: Some(t0() + Duration::seconds(300)),
        revoked_at: t0(),
        parties: parties(),
    }
}

pub(super) fn refresh(token: &str, requested: Option<&str>) -> GrantCommand {
    GrantCommand::Refresh {
        client_id: "c1".into(),
        token_hash: hash(token),
        scopes: requested.map(scopes),
        tokens: tokens(Some("r2")),
    }
}

#[test]
fn client_credentials_start_a_grant_with_one_access_token() {
    GrantTest::with(services())
        .given_no_previous_events()
        .when(GrantCommand::GrantClientCredentials {
            gid: "g1".into(),
            client_id: "c1".into(),
            scopes: scopes("api"),
            audience: vec![],
            tokens: tokens(None),
        })
        .then_expect_events(vec![
            GrantEvent::GrantStarted {
                gid: "g1".into(),
                kind: GrantKind::ClientCredentials,
                client_id: "c1".into(),
                sub: None,
                scopes: scopes("api"),
                audience: vec![],
                started_at: t0(),
            },
            access_issued("id-1", "api"),
        ]);
}

#[test]
fn a_password_grant_starts_a_refresh_family() {
    GrantTest::with(services())
        .given_no_previous_events()
        .when(GrantCommand::GrantByPassword {
            gid: "g1".into(),
            client_id: "c1".into(),
            sub: "s1".into(),
            scopes: scopes("openid"),
            audience: vec![],
            tokens: tokens(Some("r1")),
        })
        .then_expect_events(vec![
            GrantEvent::GrantStarted {
                gid: "g1".into(),
                kind: GrantKind::Password,
                client_id: "c1".into(),
                sub: Some("s1".into()),
                scopes: scopes("openid"),
                audience: vec![],
                started_at: t0(),
            },
            access_issued("id-1", "openid"),
            refresh_issued(),
        ]);
}

#[test]
fn zero_lifetimes_are_refused() {
    GrantTest::with(services())
        .given_no_previous_events()
        .when(GrantCommand::GrantClientCredentials {
            gid: "g1".into(),
            client_id: "c1".into(),
            scopes: scopes("api"),
            audience: vec![],
            tokens: TokenRequest {
                access_ttl_secs: 0,
                ..tokens(None)
            },
        })
        .then_expect_error(GrantError::ZeroLifetime);
}

#[test]
fn refreshing_rotates_the_token_and_issues_a_new_access_token() {
    GrantTest::with(services())
        .given(redeemed_history())
        .when(refresh("r1", None))
        .then_expect_events(vec![
            rotated(),
            access_issued("id-1", "offline_access openid"),
        ]);
}

#[test]
fn refreshing_with_narrower_scope_is_allowed() {
    GrantTest::with(services())
        .given(redeemed_history())
        .when(refresh("r1", Some("openid")))
        .then_expect_events(vec![rotated(), access_issued("id-1", "openid")]);
}

#[test]
fn refreshing_with_wider_scope_is_refused() {
    GrantTest::with(services())
        .given(redeemed_history())
        .when(refresh("r1", Some("openid admin")))
        .then_expect_error(GrantError::ScopeEscalation);
}

#[test]
fn reusing_a_rotated_refresh_token_revokes_the_family() {
    let mut history = redeemed_history();
    history.extend([rotated(), access_issued("a2", "openid")]);
    GrantTest::with(services())
        .given(history)
        .when(refresh("r1", None))
        .then_expect_events(vec![
            GrantEvent::RefreshTokenReuseDetected {
                token_hash: hash("r1"),
                detected_at: t0(),
            },
            revoked("refresh_token_reuse", &["a1", "a2"]),
        ]);
}

#[test]
fn an_unknown_refresh_token_is_refused() {
    GrantTest::with(services())
        .given(redeemed_history())
        .when(refresh("nope", None))
        .then_expect_error(GrantError::UnknownRefreshToken);
}

#[test]
fn an_idle_refresh_token_has_expired() {
    GrantTest::with(services_at(t0() + Duration::seconds(3_600)))
        .given(redeemed_history())
        .when(refresh("r1", None))
        .then_expect_error(GrantError::RefreshExpired);
}

#[test]
fn a_refresh_token_is_bound_to_its_client() {
    GrantTest::with(services())
        .given(redeemed_history())
        .when(GrantCommand::Refresh {
            client_id: "c2".into(),
            token_hash: hash("r1"),
            scopes: None,
            tokens: tokens(Some("r2")),
        })
        .then_expect_error(GrantError::ClientMismatch);
}

#[test]
fn a_revoked_family_cannot_be_refreshed() {
    let mut history = redeemed_history();
    history.push(revoked("x", &["a1"]));
    GrantTest::with(services())
        .given(history)
        .when(refresh("r1", None))
        .then_expect_error(GrantError::Revoked);
}

#[test]
fn a_grant_without_refresh_token_is_not_refreshable() {
    GrantTest::with(services())
        .given(vec![code_issued()])
        .when(refresh("r1", None))
        .then_expect_error(GrantError::NotRefreshable);
}

#[test]
fn revoking_an_access_token_records_its_jti() {
    GrantTest::with(services())
        .given(redeemed_history())
        .when(GrantCommand::RevokeToken {
            client_id: "c1".into(),
            token: TokenRef::AccessJti("a1".into()),
            by: "c1".into(),
        })
        .then_expect_events(vec![GrantEvent::AccessTokenRevoked {
            jti: "a1".into(),
            by: "c1".into(),
            revoked_at: t0(),
            parties: parties(),
            expires_at: Some(t0() + Duration::seconds(300)),
        }]);
}

#[test]
fn revoking_a_refresh_token_revokes_the_grant() {
    GrantTest::with(services())
        .given(redeemed_history())
        .when(GrantCommand::RevokeToken {
            client_id: "c1".into(),
            token: TokenRef::RefreshHash(hash("r1")),
            by: "c1".into(),
        })
        .then_expect_events(vec![GrantEvent::GrantRevoked {
            by: "c1".into(),
            reason: "refresh_token_revoked".into(),
            jtis: vec!["a1".into()],
            expires_at: Some(t0() + Duration::seconds(300)),
            revoked_at: t0(),
            parties: parties(),
        }]);
}

#[test]
fn another_clients_token_is_not_revoked() {
    GrantTest::with(services())
        .given(redeemed_history())
        .when(GrantCommand::RevokeToken {
            client_id: "c2".into(),
            token: TokenRef::AccessJti("a1".into()),
            by: "c2".into(),
        })
        .then_expect_error(GrantError::ClientMismatch);
}

#[test]
fn an_unknown_token_records_nothing() {
    GrantTest::with(services())
        .given(redeemed_history())
        .when(GrantCommand::RevokeToken {
            client_id: "c1".into(),
            token: TokenRef::AccessHash(hash("none")),
            by: "c1".into(),
        })
        .then_expect_error(GrantError::UnknownToken);
}

#[test]
fn revoking_a_grant_lists_its_live_tokens() {
    GrantTest::with(services())
        .given(redeemed_history())
        .when(GrantCommand::Revoke {
            by: "writ".into(),
            reason: "x".into(),
        })
        .then_expect_events(vec![revoked("x", &["a1"])]);
}

#[test]
fn revoking_a_missing_grant_is_refused() {
    GrantTest::with(services())
        .given_no_previous_events()
        .when(GrantCommand::Revoke {
            by: "writ".into(),
            reason: "x".into(),
        })
        .then_expect_error(GrantError::NotFound);
}

#[test]
fn revoking_twice_is_refused() {
    let mut history = redeemed_history();
    history.push(revoked("x", &["a1"]));
    GrantTest::with(services())
        .given(history)
        .when(GrantCommand::Revoke {
            by: "writ".into(),
            reason: "y".into(),
        })
        .then_expect_error(GrantError::Revoked);
}
