//! The status list checker against lists served by a local HTTP server
//! and signed with the fixture's key.

use std::sync::{Arc, Mutex};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use writ_protocol::status_list::{StatusList, INVALID};

use crate::verify::tests::{claims, fixture_with, now, Fixture};
use crate::Config;

/// What the list's URL answers: a status and a body.
type Answer = Arc<Mutex<(StatusCode, String)>>;

struct Served {
    fixture: Fixture,
    answer: Answer,
    uri: String,
}

/// A list server on a port of its own, and a resource server whose JWKS
/// (so whose trusted origin) is there.
async fn serving(setup: impl FnOnce(&mut Config)) -> Served {
    let answer: Answer = Arc::new(Mutex::new((StatusCode::NOT_FOUND, String::new())));
    let shared = answer.clone();
    let app = axum::Router::new().route(
        "/statuslists/l",
        axum::routing::get(move || {
            let (status, body) = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
            async move {
                (
                    status,
                    [(header::CONTENT_TYPE, "application/statuslist+jwt")],
                    body,
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let fixture = fixture_with(|config| {
        config.jwks_url = format!("http://{address}/jwks");
        config.status_lists = true;
        setup(config);
    });
    Served {
        fixture,
        answer,
        uri: format!("http://{address}/statuslists/l"),
    }
}

impl Served {
    /// Serves a list of 16 with `revoked` set, signed with `changes`
    /// made to its claims.
    fn serve(&self, revoked: &[u64], changes: impl FnOnce(&mut Value)) {
        let mut list = StatusList::new(1, 16).unwrap_or_else(|e| panic!("{e}"));
        for idx in revoked {
            list.set(*idx, INVALID);
        }
        self.serve_list(&list, "statuslist+jwt", changes);
    }

    fn serve_list(&self, list: &StatusList, typ: &str, changes: impl FnOnce(&mut Value)) {
        let mut claims = json!({
            "sub": self.uri,
            "iat": now(),
            "exp": now() + 3600,
            "ttl": 300,
            "status_list": list.encode(),
        });
        changes(&mut claims);
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) =
            (StatusCode::OK, self.fixture.sign(typ, &claims));
    }

    fn fail(&self) {
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) =
            (StatusCode::INTERNAL_SERVER_ERROR, String::new());
    }

    /// An access token whose entry is `idx` in the served list.
    fn token(&self, idx: u64) -> String {
        let mut claims = claims();
        claims["status"] = json!({"status_list": {"idx": idx, "uri": self.uri}});
        self.fixture.sign("at+jwt", &claims)
    }

    async fn decision(&self, token: &str) -> Result<(), (u16, Option<&'static str>)> {
        self.fixture
            .server
            .authenticate(token)
            .await
            .map(|_| ())
            .map_err(|refusal| (refusal.status().as_u16(), refusal.error()))
    }
}

type ClaimsChange = Box<dyn Fn(&mut Value)>;

const REVOKED: Result<(), (u16, Option<&str>)> = Err((401, Some("invalid_token")));
/// The token's state cannot be known: 503, no error code.
const UNKNOWN: Result<(), (u16, Option<&str>)> = Err((503, None));

#[tokio::test]
async fn the_tokens_own_bit_decides() {
    let served = serving(|_| {}).await;
    served.serve(&[5], |_| {});
    assert_eq!(served.decision(&served.token(4)).await, Ok(()));
    assert_eq!(served.decision(&served.token(5)).await, REVOKED);
    assert_eq!(
        served.decision(&served.token(16)).await,
        REVOKED,
        "beyond the list"
    );
    let unlisted = served.fixture.sign("at+jwt", &claims());
    assert_eq!(served.decision(&unlisted).await, REVOKED, "no entry at all");
}

#[tokio::test]
async fn a_list_that_does_not_check_out_decides_nothing() {
    let refusals: [(&str, ClaimsChange); 5] = [
        (
            "another sub",
            Box::new(|c| c["sub"] = json!("http://elsewhere/statuslists/l")),
        ),
        ("expired", Box::new(|c| c["exp"] = json!(now() - 1))),
        (
            "issued in the future",
            Box::new(|c| c["iat"] = json!(now() + 60)),
        ),
        (
            "older than its ttl",
            Box::new(|c| c["iat"] = json!(now() - 400)),
        ),
        (
            "not a list",
            Box::new(|c| c["status_list"] = json!({"bits": 1, "lst": "!!"})),
        ),
    ];
    for (why, change) in refusals {
        let served = serving(|_| {}).await;
        served.serve(&[], change);
        assert_eq!(served.decision(&served.token(1)).await, UNKNOWN, "{why}");
    }
    let served = serving(|_| {}).await;
    let list = StatusList::new(1, 16).unwrap_or_else(|e| panic!("{e}"));
    served.serve_list(&list, "at+jwt", |_| {});
    assert_eq!(
        served.decision(&served.token(1)).await,
        UNKNOWN,
        "an access token is no list"
    );
}

#[tokio::test]
async fn lists_are_fetched_from_writ_only() {
    let served = serving(|_| {}).await;
    served.serve(&[], |_| {});
    for uri in [
        served.uri.replace("127.0.0.1", "127.0.0.2"),
        "http://writ.example/statuslists/l".to_owned(),
        "file:///etc/passwd".to_owned(),
    ] {
        let mut claims = claims();
        claims["status"] = json!({"status_list": {"idx": 1, "uri": uri}});
        let token = served.fixture.sign("at+jwt", &claims);
        assert_eq!(served.decision(&token).await, UNKNOWN, "{uri}");
    }
}

#[tokio::test]
async fn a_list_is_kept_for_its_ttl() {
    let served =
        serving(|config| config.status_list_max_ttl = std::time::Duration::from_secs(3600)).await;
    served.serve(&[], |_| {});
    assert_eq!(served.decision(&served.token(3)).await, Ok(()));
    served.serve(&[3], |_| {});
    assert_eq!(
        served.decision(&served.token(3)).await,
        Ok(()),
        "the copy in hand decides"
    );

    let eager = served_with_ttl_zero().await;
    eager.serve(&[], |_| {});
    assert_eq!(eager.decision(&eager.token(3)).await, Ok(()));
    eager.serve(&[3], |_| {});
    assert_eq!(
        eager.decision(&eager.token(3)).await,
        REVOKED,
        "fetched again"
    );
}

async fn served_with_ttl_zero() -> Served {
    serving(|config| config.status_list_max_ttl = std::time::Duration::ZERO).await
}

#[tokio::test]
async fn a_stale_copy_stands_in_while_writ_is_away_but_only_for_max_stale() {
    let served = served_with_ttl_zero().await;
    served.serve(&[3], |_| {});
    assert_eq!(served.decision(&served.token(2)).await, Ok(()));
    served.fail();
    assert_eq!(
        served.decision(&served.token(2)).await,
        Ok(()),
        "the copy stands in"
    );
    assert_eq!(served.decision(&served.token(3)).await, REVOKED);

    let strict = serving(|config| {
        config.status_list_max_ttl = std::time::Duration::ZERO;
        config.status_list_max_stale = std::time::Duration::ZERO;
    })
    .await;
    strict.serve(&[], |_| {});
    assert_eq!(strict.decision(&strict.token(2)).await, Ok(()));
    strict.fail();
    assert_eq!(strict.decision(&strict.token(2)).await, UNKNOWN);
}

#[tokio::test]
async fn an_older_list_than_the_copy_in_hand_is_a_replay() {
    let served = served_with_ttl_zero().await;
    served.serve(&[3], |_| {});
    assert_eq!(served.decision(&served.token(3)).await, REVOKED);
    // The list from before the revocation, signed earlier.
    served.serve(&[], |c| c["iat"] = json!(now() - 60));
    assert_eq!(served.decision(&served.token(3)).await, REVOKED);
}

#[tokio::test]
async fn a_list_with_many_revocations_verifies() {
    let served = serving(|_| {}).await;
    let mut list = StatusList::new(1, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
    // Every seventh index: far more than fits an 8 KiB token.
    for idx in (0..1 << 20).step_by(7) {
        list.set(idx, INVALID);
    }
    served.serve_list(&list, "statuslist+jwt", |_| {});
    assert_eq!(served.decision(&served.token(7 * 1000)).await, REVOKED);
    assert_eq!(served.decision(&served.token(7 * 1000 + 1)).await, Ok(()));
}
