use chrono::{Duration, TimeZone};
use writ_domain::values::{RedirectUri, ScopeSet, SecretHash};

use super::*;
use crate::fold::Tables;

fn code_issued(at: DateTime<Utc>) -> GrantEvent {
    GrantEvent::CodeIssued {
        gid: "g1".into(),
        client_id: "c1".into(),
        sub: "s1".into(),
        scopes: ScopeSet::parse("openid").unwrap_or_default(),
        audience: vec![],
        redirect_uri: RedirectUri::parse("https://app.example/cb")
            .unwrap_or_else(|e| panic!("{e}")),
        code_hash: SecretHash("code-hash".into()),
        challenge: None,
        nonce: None,
        request_id: "r".into(),
        issued_at: at,
        expires_at: at + Duration::seconds(60),
        auth_time: None,
        sid: None,
        redirect_uri_defaulted: false,
        token_ttl_secs: Some(300),
        dpop_jkt: None,
    }
}

#[test]
fn a_redemption_after_the_revocation_in_an_old_log_leaves_the_grant_revoked() {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut tables = Tables::default();
    for event in [
        code_issued(at),
        GrantEvent::GrantRevoked {
            by: "user:s1".into(),
            reason: "logout".into(),
            jtis: vec![],
            expires_at: None,
            revoked_at: at,
            parties: None,
        },
        GrantEvent::CodeRedeemed { redeemed_at: at },
    ] {
        for change in grant("g1", "cursor", event) {
            tables.apply(change).unwrap_or_else(|e| panic!("{e:?}"));
        }
    }
    assert_eq!(tables.value(&GRANTS, "g1", "status"), Some("revoked"));
}

/// One of every grant event that comes after the grant's first.
fn every_later_event(at: DateTime<Utc>) -> Vec<GrantEvent> {
    let hash = || SecretHash("h".into());
    vec![
        GrantEvent::CodeRedeemed { redeemed_at: at },
        GrantEvent::CodeBurned {
            reason: "r".into(),
            burned_at: at,
        },
        GrantEvent::CodeReplayDetected { detected_at: at },
        GrantEvent::AccessTokenIssued {
            jti: "j".into(),
            token_hash: Some(hash()),
            scopes: ScopeSet::parse("openid").unwrap_or_default(),
            issued_at: at,
            expires_at: at,
            audience: None,
            jkt: None,
            status: None,
        },
        GrantEvent::RefreshTokenIssued {
            token_hash: hash(),
            issued_at: at,
            idle_expires_at: at,
            family_expires_at: at,
            jkt: None,
        },
        GrantEvent::RefreshTokenRotated {
            previous_hash: hash(),
            token_hash: SecretHash("h2".into()),
            rotated_at: at,
            idle_expires_at: at,
            jkt: None,
        },
        GrantEvent::RefreshTokenReuseDetected {
            token_hash: hash(),
            detected_at: at,
        },
        GrantEvent::DeviceAuthorizationApproved {
            sub: "s1".into(),
            auth_time: at,
            sid: None,
            approved_at: at,
        },
        GrantEvent::DeviceAuthorizationDenied {
            sub: "s1".into(),
            denied_at: at,
        },
        GrantEvent::DeviceCodeRedeemed { redeemed_at: at },
        GrantEvent::AccessTokenRevoked {
            jti: "j".into(),
            by: "client:c1".into(),
            revoked_at: at,
            parties: None,
            expires_at: None,
        },
        GrantEvent::GrantRevoked {
            by: "client:c1".into(),
            reason: "r".into(),
            jtis: vec![],
            expires_at: None,
            revoked_at: at,
            parties: None,
        },
    ]
}

/// The projector backfills audit rows' subjects after the events named
/// in `SUBJECT_ARRIVES`; a later event that set `grants.sub` without
/// being named there would leave its grant's earlier rows without one.
#[test]
fn the_events_that_give_a_grant_its_subject_later_are_the_ones_the_audit_index_backfills_after() {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let later = every_later_event(at);
    let first_events = [
        "CodeIssued",
        "GrantStarted",
        "GrantExchanged",
        "DeviceAuthorizationStarted",
    ];
    let mut covered: Vec<&str> = later.iter().map(<&'static str>::from).collect();
    covered.extend(first_events);
    covered.sort_unstable();
    let mut types = GrantEvent::TYPES.to_vec();
    types.sort_unstable();
    assert_eq!(
        covered, types,
        "a new grant event: add it to every_later_event"
    );
    let mut setting_subject: Vec<&str> = later
        .into_iter()
        .filter_map(|event| {
            let name: &'static str = (&event).into();
            let sets_sub = grant("g1", "cursor", event).iter().any(|change| {
                matches!(change, Change::Update { table, set, .. }
                    if table.name == GRANTS.name && set.iter().any(|(column, _)| *column == grant::sub))
            });
            sets_sub.then_some(name)
        })
        .collect();
    setting_subject.sort_unstable();
    let mut named = crate::views::SUBJECT_ARRIVES.to_vec();
    named.sort_unstable();
    assert_eq!(setting_subject, named);
}

#[test]
fn a_redemption_of_a_pending_code_activates_the_grant() {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut tables = Tables::default();
    for event in [
        code_issued(at),
        GrantEvent::CodeRedeemed { redeemed_at: at },
    ] {
        for change in grant("g1", "cursor", event) {
            tables.apply(change).unwrap_or_else(|e| panic!("{e:?}"));
        }
    }
    assert_eq!(tables.value(&GRANTS, "g1", "status"), Some("active"));
}
