//! RFC 8693: an exchanged grant records its parent, every ancestor and
//! its actors; a chain too long, or a lineage not ending at its parent,
//! is refused; revoked, it is as terminal as any grant (R72).

use super::*;

fn lineage(ancestors: &[&str]) -> Lineage {
    Lineage {
        parent_gid: ancestors.last().copied().unwrap_or_default().into(),
        ancestors: ancestors.iter().map(|gid| (*gid).to_owned()).collect(),
        act: Some(Actor {
            sub: "svc-b".into(),
            client_id: "svc-b".into(),
            act: Some(Box::new(Actor {
                sub: "svc-a".into(),
                client_id: "svc-a".into(),
                act: None,
            })),
        }),
        subject_token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
    }
}

fn exchange(ancestors: &[&str]) -> GrantCommand {
    GrantCommand::Exchange {
        gid: "g2".into(),
        client_id: "svc-b".into(),
        sub: Some("s1".into()),
        scopes: scopes("read"),
        audience: vec!["svc-c".into()],
        lineage: lineage(ancestors),
        tokens: tokens(None),
    }
}

fn exchanged(ancestors: &[&str]) -> GrantEvent {
    GrantEvent::GrantExchanged {
        gid: "g2".into(),
        client_id: "svc-b".into(),
        sub: Some("s1".into()),
        scopes: scopes("read"),
        audience: vec!["svc-c".into()],
        lineage: lineage(ancestors),
        started_at: t0(),
    }
}

#[test]
fn an_exchange_records_its_lineage_and_mints_an_access_token_only() {
    GrantTest::with(services())
        .given_no_previous_events()
        .when(exchange(&["g0", "g1"]))
        .then_expect_events(vec![
            exchanged(&["g0", "g1"]),
            access_issued("id-1", "read"),
        ]);
}

#[test]
fn a_chain_too_long_or_not_ending_at_its_parent_is_refused() {
    let deep: Vec<String> = (0..=MAX_EXCHANGE_DEPTH).map(|i| format!("g{i}")).collect();
    let deep: Vec<&str> = deep.iter().map(String::as_str).collect();
    GrantTest::with(services())
        .given_no_previous_events()
        .when(exchange(&deep))
        .then_expect_error(GrantError::DelegationTooDeep);
    let mut broken = exchange(&["g0", "g1"]);
    if let GrantCommand::Exchange { lineage, .. } = &mut broken {
        lineage.parent_gid = "g0".into();
    }
    GrantTest::with(services())
        .given_no_previous_events()
        .when(broken)
        .then_expect_error(GrantError::DelegationTooDeep);
}

#[test]
fn a_revoked_exchanged_grant_stays_revoked() {
    GrantTest::with(services())
        .given(vec![
            exchanged(&["g1"]),
            access_issued("a1", "read"),
            revoked("parent_revoked", &["a1"]),
        ])
        .when(exchange(&["g1"]))
        .then_expect_error(GrantError::Revoked);
}

#[test]
fn the_lineage_is_stored_flat_beside_the_grant_fields() {
    let text = serde_json::to_value(exchanged(&["g0", "g1"])).unwrap_or_default();
    let body = &text["GrantExchanged"];
    assert_eq!(body["parent_gid"], "g1");
    assert_eq!(body["ancestors"], serde_json::json!(["g0", "g1"]));
    assert_eq!(body["act"]["act"]["client_id"], "svc-a");
    let back: GrantEvent = serde_json::from_value(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, exchanged(&["g0", "g1"]));
    let actor = lineage(&["g1"]).act.unwrap_or_else(|| panic!("an actor"));
    let chain: Vec<&str> = actor.chain().map(|a| a.client_id.as_str()).collect();
    assert_eq!(chain, ["svc-b", "svc-a"]);
}
