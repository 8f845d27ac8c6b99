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
