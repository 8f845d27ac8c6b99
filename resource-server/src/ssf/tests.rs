//! The Shared Signals receiver: SETs signed with the fixture's key, and
//! the push endpoint answering as RFC 8935 says.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::verify::tests::{claims, fixture_with, now, Fixture, ISSUER};

const RECEIVER: &str = "the-receiver";

fn set(fixture: &Fixture, event_type: &str, body: Value, sub_id: Value) -> String {
    fixture.sign(
        "secevent+jwt",
        &json!({
            "iss": ISSUER,
            "aud": RECEIVER,
            "jti": "00000000000000000042.stream",
            "iat": now(),
            "sub_id": sub_id,
            "events": {event_type: body},
        }),
    )
}

fn user(sub: &str) -> Value {
    json!({"format": "iss_sub", "iss": ISSUER, "sub": sub})
}

/// An access token of `sub`'s grant `gid`, issued `ago` seconds ago.
fn token(fixture: &Fixture, sub: &str, gid: &str, ago: i64) -> String {
    let mut claims = claims();
    claims["sub"] = json!(sub);
    claims["gid"] = json!(gid);
    claims["iat"] = json!(now() - ago);
    fixture.sign("at+jwt", &claims)
}

async fn denied(fixture: &Fixture, token: &str) -> bool {
    fixture.server.authenticate(token).await.is_err()
}

#[tokio::test]
async fn a_revoked_session_denies_its_grant_and_nothing_else() {
    let fixture = fixture_with(|_| {});
    let receiver = SsfReceiver::new(fixture.server.clone(), RECEIVER);
    let sub_id = json!({"format": "complex", "user": user("alice"), "session": {"format": "opaque", "id": "g1"}});
    let revoked = set(
        &fixture,
        SESSION_REVOKED,
        json!({"event_timestamp": now()}),
        sub_id,
    );
    assert_eq!(receiver.accept(&revoked).await, Ok(()));
    assert!(denied(&fixture, &token(&fixture, "alice", "g1", 0)).await);
    assert!(!denied(&fixture, &token(&fixture, "alice", "g2", 0)).await);
    assert_eq!(
        fixture.server.lag().0.as_deref(),
        Some("00000000000000000042")
    );
}

#[tokio::test]
async fn an_account_signal_denies_the_tokens_issued_before_it() {
    let fixture = fixture_with(|_| {});
    let receiver = SsfReceiver::new(fixture.server.clone(), RECEIVER);
    let changed =
        json!({"credential_type": "password", "change_type": "update", "event_timestamp": now()});
    let added = json!({"credential_type": "fido2-roaming", "change_type": "create", "event_timestamp": now()});
    assert_eq!(
        receiver
            .accept(&set(&fixture, CREDENTIAL_CHANGE, added, user("bob")))
            .await,
        Ok(())
    );
    assert!(
        !denied(&fixture, &token(&fixture, "bob", "g1", 60)).await,
        "a credential added"
    );
    assert_eq!(
        receiver
            .accept(&set(&fixture, CREDENTIAL_CHANGE, changed, user("bob")))
            .await,
        Ok(())
    );
    assert!(denied(&fixture, &token(&fixture, "bob", "g1", 60)).await);
    assert!(!denied(&fixture, &token(&fixture, "carol", "g3", 60)).await);
    for event_type in [ACCOUNT_DISABLED, ACCOUNT_PURGED] {
        let fixture = fixture_with(|_| {});
        let receiver = SsfReceiver::new(fixture.server.clone(), RECEIVER);
        assert_eq!(
            receiver
                .accept(&set(&fixture, event_type, json!({}), user("dave")))
                .await,
            Ok(())
        );
        assert!(
            denied(&fixture, &token(&fixture, "dave", "g4", 60)).await,
            "{event_type}"
        );
    }
}

#[tokio::test]
async fn sets_that_are_not_writs_for_this_receiver_change_nothing() {
    let fixture = fixture_with(|_| {});
    let receiver = SsfReceiver::new(fixture.server.clone(), RECEIVER);
    let sub_id = json!({"format": "complex", "session": {"format": "opaque", "id": "g1"}});
    let claims = json!({
        "iss": ISSUER, "aud": RECEIVER, "jti": "1.s", "iat": now(),
        "sub_id": sub_id, "events": {SESSION_REVOKED: {}},
    });
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims.clone();
        change(&mut claims);
        claims
    };
    let other_key = fixture_with(|_| {});
    let refused = [
        (fixture.sign("at+jwt", &claims), "invalid_request"),
        (
            fixture.sign(
                "secevent+jwt",
                &with(&|c| c["iss"] = json!("https://evil.example")),
            ),
            "invalid_issuer",
        ),
        (
            fixture.sign("secevent+jwt", &with(&|c| c["aud"] = json!("another"))),
            "invalid_audience",
        ),
        (
            fixture.sign("secevent+jwt", &with(&|c| c["events"] = json!("nope"))),
            "invalid_request",
        ),
        (other_key.sign("secevent+jwt", &claims), "invalid_key"),
        ("not a jwt".to_owned(), "invalid_key"),
    ];
    for (set, err) in refused {
        assert_eq!(receiver.accept(&set).await.map_err(|e| e.err), Err(err));
    }
    assert_eq!(fixture.server.denied_entries(), 0);
    // Unknown events and verification are accepted and change nothing.
    let verification = set(
        &fixture,
        "https://schemas.openid.net/secevent/ssf/event-type/verification",
        json!({"state": "x"}),
        json!({"format": "opaque", "id": "s"}),
    );
    assert_eq!(receiver.accept(&verification).await, Ok(()));
    assert_eq!(fixture.server.denied_entries(), 0);
}

#[tokio::test]
async fn the_push_endpoint_answers_as_rfc_8935_says() {
    let fixture = fixture_with(|_| {});
    let receiver = SsfReceiver::new(fixture.server.clone(), RECEIVER);
    let app = push_router("/events", receiver, Some("Bearer s3cret".into()));
    let sub_id = json!({"format": "complex", "session": {"format": "opaque", "id": "g9"}});
    let good = set(&fixture, SESSION_REVOKED, json!({}), sub_id);
    let post = |authorization: Option<&str>, content_type: &str, body: String| {
        let mut request = Request::post("/events").header("content-type", content_type);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request
            .body(Body::from(body))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let status = |request: Request<Body>| {
        let app = app.clone();
        async move {
            app.oneshot(request)
                .await
                .unwrap_or_else(|e: std::convert::Infallible| match e {})
                .status()
        }
    };
    let jwt = "application/secevent+jwt";
    assert_eq!(
        status(post(None, jwt, good.clone())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(post(Some("Bearer wrong"), jwt, good.clone())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(post(
            Some("Bearer s3cret"),
            "application/json",
            good.clone()
        ))
        .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status(post(Some("Bearer s3cret"), jwt, "x".repeat(70_000))).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(fixture.server.denied_entries(), 0);
    assert_eq!(
        status(post(Some("Bearer s3cret"), jwt, good)).await,
        StatusCode::ACCEPTED
    );
    assert!(denied(&fixture, &token(&fixture, "alice", "g9", 0)).await);
}
