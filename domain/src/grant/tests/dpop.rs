//! RFC 9449: codes and refresh tokens bound to a DPoP key are refused,
//! recording nothing, to a request that cannot prove that key; access
//! tokens record the key they are bound to.

use super::*;

fn with_key(mut tokens: TokenRequest, jkt: Option<&str>) -> TokenRequest {
    tokens.dpop_jkt = jkt.map(str::to_owned);
    tokens
}

fn bound_code() -> GrantEvent {
    let mut event = code_issued();
    if let GrantEvent::CodeIssued { dpop_jkt, .. } = &mut event {
        *dpop_jkt = Some("key-1".into());
    }
    event
}

fn redeem_with(jkt: Option<&str>) -> GrantCommand {
    GrantCommand::RedeemCode {
        client_id: "c1".into(),
        code_hash: hash("code"),
        redirect_uri: Some(uri("https://app.example/cb")),
        verifier: Some(VERIFIER.into()),
        tokens: with_key(tokens(None), jkt),
    }
}

#[test]
fn a_bound_code_is_redeemed_only_with_its_key_and_stays_unspent_otherwise() {
    for wrong in [None, Some("key-2")] {
        GrantTest::with(services())
            .given(vec![bound_code()])
            .when(redeem_with(wrong))
            .then_expect_error(GrantError::DpopKeyMismatch);
    }
    let mut bound_access = access_issued("id-1", "openid offline_access");
    if let GrantEvent::AccessTokenIssued { jkt, .. } = &mut bound_access {
        *jkt = Some("key-1".into());
    }
    GrantTest::with(services())
        .given(vec![bound_code()])
        .when(redeem_with(Some("key-1")))
        .then_expect_events(vec![
            GrantEvent::CodeRedeemed { redeemed_at: t0() },
            bound_access,
        ]);
}

#[test]
fn a_bound_refresh_family_needs_its_key_at_every_refresh() {
    let mut history = redeemed_history();
    if let Some(GrantEvent::RefreshTokenIssued { jkt, .. }) = history.last_mut() {
        *jkt = Some("key-1".into());
    }
    let refresh_with = |jkt: Option<&str>| {
        let GrantCommand::Refresh {
            client_id,
            token_hash,
            scopes,
            tokens,
        } = refresh("r1", None)
        else {
            unreachable!("fixture is a Refresh")
        };
        GrantCommand::Refresh {
            client_id,
            token_hash,
            scopes,
            tokens: with_key(tokens, jkt),
        }
    };
    for wrong in [None, Some("key-2")] {
        GrantTest::with(services())
            .given(history.clone())
            .when(refresh_with(wrong))
            .then_expect_error(GrantError::DpopKeyMismatch);
    }
    let accepted = GrantTest::with(services())
        .given(history)
        .when(refresh_with(Some("key-1")))
        .inspect_result();
    assert!(accepted.is_ok(), "{accepted:?}");
}

#[test]
fn an_unbound_family_is_bound_by_the_first_refresh_that_proves_a_key() {
    let mut proved = with_key(tokens(Some("r2")), Some("key-1"));
    if let Some(next) = &mut proved.refresh {
        next.jkt = Some("key-1".into());
    }
    let first = GrantCommand::Refresh {
        client_id: "c1".into(),
        token_hash: hash("r1"),
        scopes: None,
        tokens: proved,
    };
    let events = GrantTest::with(services())
        .given(redeemed_history())
        .when(first)
        .inspect_result()
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(GrantEvent::RefreshTokenRotated { jkt, .. }) = events.first().cloned() else {
        panic!("rotated first: {events:?}")
    };
    assert_eq!(jkt.as_deref(), Some("key-1"), "RFC 9449 §5");
    let mut history = redeemed_history();
    history.extend(events);
    let later = |jkt: Option<&str>| GrantCommand::Refresh {
        client_id: "c1".into(),
        token_hash: hash("r2"),
        scopes: None,
        tokens: with_key(tokens(Some("r3")), jkt),
    };
    GrantTest::with(services())
        .given(history)
        .when(later(None))
        .then_expect_error(GrantError::DpopKeyMismatch);
}
