use chrono::TimeZone;

use super::*;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0)
        .single()
        .unwrap_or_default()
}

fn message(kind: RevocationType, revoked: i64, expires: i64) -> Revocation {
    Revocation {
        version: 1,
        kind,
        jtis: Vec::new(),
        gid: None,
        client_id: None,
        sub: None,
        revoked_at: at(revoked),
        expires_at: at(expires),
        reason: "test".into(),
        cursor: format!("{revoked:020}"),
    }
}

fn token(jti: &str, gid: &str, sub: Option<&str>, client: &str, issued: i64) -> TokenFacts {
    TokenFacts {
        jti: jti.into(),
        gid: Some(gid.into()),
        sub: sub.map(Into::into),
        client_id: Some(client.into()),
        issued_at: at(issued),
    }
}

#[test]
fn a_token_message_denies_that_jti_only() {
    let mut list = DenyList::new(Duration::ZERO);
    list.apply(
        &Revocation {
            jtis: vec!["j1".into()],
            gid: Some("g1".into()),
            ..message(RevocationType::TokenRevoked, 10, 300)
        },
        at(10),
    );
    assert!(list.denies(&token("j1", "g1", Some("alice"), "app", 0)));
    assert!(
        !list.denies(&token("j2", "g1", Some("alice"), "app", 0)),
        "same grant, other token"
    );
}

#[test]
fn a_grant_message_denies_the_grant_and_its_listed_tokens() {
    let mut list = DenyList::new(Duration::ZERO);
    list.apply(
        &Revocation {
            jtis: vec!["j1".into()],
            gid: Some("g1".into()),
            ..message(RevocationType::GrantRevoked, 10, 300)
        },
        at(10),
    );
    assert!(
        list.denies(&token("j9", "g1", None, "app", 50)),
        "any token of the grant"
    );
    assert!(list.denies(&token("j1", "g7", None, "app", 0)));
    assert!(!list.denies(&token("j2", "g2", None, "app", 0)));
}

#[test]
fn principal_messages_deny_tokens_issued_up_to_the_revocation_plus_skew() {
    let mut list = DenyList::new(Duration::from_secs(5));
    list.apply(
        &Revocation {
            sub: Some("alice".into()),
            client_id: Some("app".into()),
            ..message(RevocationType::ConsentWithdrawn, 100, 400)
        },
        at(100),
    );
    assert!(list.denies(&token("a", "g", Some("alice"), "app", 90)));
    assert!(
        list.denies(&token("b", "g", Some("alice"), "app", 104)),
        "within the skew"
    );
    assert!(
        !list.denies(&token("c", "g", Some("alice"), "app", 106)),
        "issued after"
    );
    assert!(
        !list.denies(&token("d", "g", Some("alice"), "other", 90)),
        "another client"
    );
    assert!(
        !list.denies(&token("e", "g", Some("bob"), "app", 90)),
        "another subject"
    );

    list.apply(
        &Revocation {
            client_id: Some("other".into()),
            ..message(RevocationType::ClientDisabled, 100, 400)
        },
        at(100),
    );
    assert!(list.denies(&token("f", "g", None, "other", 90)));
    assert!(!list.denies(&token("f", "g", None, "third", 90)));

    list.apply(
        &Revocation {
            sub: Some("carol".into()),
            ..message(RevocationType::AccountDisabled, 100, 400)
        },
        at(100),
    );
    assert!(list.denies(&token("h", "g", Some("carol"), "third", 90)));
    assert!(!list.denies(&token("h", "g", Some("dave"), "third", 90)));
}

#[test]
fn duplicates_change_nothing_and_expired_entries_are_forgotten() {
    let mut list = DenyList::new(Duration::ZERO);
    let revoked = Revocation {
        jtis: vec!["j1".into()],
        ..message(RevocationType::TokenRevoked, 10, 300)
    };
    list.apply(&revoked, at(10));
    list.apply(&revoked, at(11));
    assert_eq!(list.len(), 1);
    assert_eq!(list.position().0, Some(revoked.cursor.as_str()));
    list.prune(at(299));
    assert_eq!(list.len(), 1, "the token is still alive");
    list.prune(at(301));
    assert!(list.is_empty());
}

/// The revocation_feed fuzz target found a message whose tokens had all
/// expired stored again on every delivery until the next prune.
#[test]
fn a_message_whose_tokens_all_expired_is_not_kept_but_moves_the_position() {
    let mut list = DenyList::new(Duration::from_secs(5));
    let stale = Revocation {
        jtis: vec!["j1".into()],
        ..message(RevocationType::GrantRevoked, 10, 300)
    };
    list.apply(&stale, at(304));
    assert_eq!(list.len(), 1, "within the skew it still denies");
    list.prune(at(304));
    list.apply(&stale, at(400));
    list.prune(at(400));
    assert!(list.is_empty());
    list.apply(&stale, at(401));
    assert!(list.is_empty(), "a replayed message that denies nothing");
    assert_eq!(list.position().0, Some(stale.cursor.as_str()));
    assert_eq!(list.position().1, Some(at(401)));
}
