//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0) against
//! the real binary: a relying party's back channel on a local port that
//! refuses twice before it accepts, logout tokens checked by an
//! independent JWT library, the outbox's attempts in the log, a logout by
//! the person, by `writ user sign-out` and by disabling the account, a
//! relying party given up on, and what registration accepts.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode as Status;
use axum::routing::post;
use axum::{Form, Router};
use jsonwebtoken::jwk::JwkSet;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::browser::{self, Browser, LOGOUT_URI, REDIRECT_URI};
use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::{self, Api};

writ_testing::on_both_backends!(
    a_logout_reaches_the_relying_partys_back_channel_after_two_refusals,
    a_relying_party_that_refuses_the_token_is_not_asked_again,
    sign_out_and_disabling_the_account_send_logout_tokens_too,
    a_back_channel_that_never_answers_is_given_up_without_blocking_anyone,
    registration_takes_only_back_channels_writ_may_call,
);

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A relying party's back channel on a port of its own: it answers each
/// logout token with the next of `answers`, the last one from then on,
/// and keeps every token.
struct Receiver {
    url: String,
    tokens: Arc<Mutex<Vec<String>>>,
}

#[derive(serde::Deserialize)]
struct Posted {
    logout_token: String,
}

type Kept = (Arc<Mutex<Vec<String>>>, Vec<u16>);

async fn receiver(answers: &[u16]) -> Receiver {
    let tokens: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = Router::new()
        .route(
            "/backchannel",
            post(
                |State((tokens, answers)): State<Kept>, Form(posted): Form<Posted>| async move {
                    let mut kept = tokens.lock().unwrap_or_else(|e| e.into_inner());
                    kept.push(posted.logout_token);
                    let answer = answers
                        .get(kept.len() - 1)
                        .or(answers.last())
                        .copied()
                        .unwrap_or(200);
                    Status::from_u16(answer).unwrap_or(Status::OK)
                },
            ),
        )
        .with_state((tokens.clone(), answers.to_vec()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{address}/backchannel"),
        tokens,
    }
}

impl Receiver {
    fn received(&self) -> Vec<String> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until `count` tokens have arrived.
    async fn wait_for(&self, count: usize) -> Vec<String> {
        eventually(&format!("{count} logout tokens"), || async {
            let received = self.received();
            (received.len() >= count).then_some(received)
        })
        .await
    }
}

/// The claims of a logout token, checked as an id_token is (§2.6) by the
/// `jsonwebtoken` crate, and its header's `typ`.
fn logout_claims(token: &str, keys: &JwkSet, audience: &str, issuer: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"), "§2.4");
    crate::tokens::verified(token, keys, audience, issuer)
}

async fn count_events(deployment: &Deployment, event_type: &str) -> i64 {
    deployment
        .count(&format!(
            "SELECT count(*) FROM events WHERE event_type = '{event_type}'"
        ))
        .await
}

async fn a_logout_reaches_the_relying_partys_back_channel_after_two_refusals(backend: Backend) {
    let rp = receiver(&[500, 500, 200]).await;
    let quiet = receiver(&[200]).await;
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &["--backchannel-logout-uri", &rp.url]);
    // Asks for no `openid`: it receives no id_token, so no logout token.
    let plain = oauth::client(
        &deployment,
        &[
            "--name",
            "Plain",
            "--redirect-uri",
            REDIRECT_URI,
            "--scope",
            "profile",
            "--backchannel-logout-uri",
            &quiet.url,
        ],
    );
    browser::user(&deployment, "alice");
    let server = deployment.serve();
    let api = Api::new(&server);
    let discovery = api.discovery().await;
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);

    let person = Browser::new(&server);
    let back = person
        .code_flow(&browser::oidc_params(&app.id, "s"), "alice")
        .await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let reply = browser::redeem(&api, &app, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let keys: JwkSet = api.json("/jwks").await;
    let id_token = reply.field("id_token");
    let id_claims = crate::tokens::verified(&id_token, &keys, &app.id, &api.base);
    let sid = id_claims["sid"].as_str().unwrap_or_default().to_owned();
    assert!(
        !sid.is_empty(),
        "the id_token names its session: {id_claims}"
    );
    let mut params = browser::oidc_params(&plain.id, "p");
    params.retain(|(name, _)| *name != "scope" && *name != "nonce");
    params.push(("scope", "profile"));
    let plain_back = person.code_flow(&params, "alice").await;
    assert!(plain_back.redirect_query(REDIRECT_URI).contains_key("code"));

    // The person signs out at the relying party: at once, no page.
    let signed_out = person
        .get(&format!(
            "/logout?{}",
            oauth::form(&[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", LOGOUT_URI),
            ])
        ))
        .await;
    assert_eq!(
        signed_out.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_out.html
    );

    let tokens = rp.wait_for(3).await;
    let first = logout_claims(&tokens[0], &keys, &app.id, &api.base);
    for token in &tokens {
        let claims = logout_claims(token, &keys, &app.id, &api.base);
        assert_eq!(claims["jti"], first["jti"], "one jti for every attempt");
        assert_eq!(claims["sid"], json!(sid));
        assert_eq!(claims["sub"], id_claims["sub"]);
        assert_eq!(claims["events"], json!({ EVENT: {} }));
        assert!(claims.get("nonce").is_none(), "§2.4: never a nonce");
        assert!(claims["iat"].is_i64() && claims["exp"].is_i64());
    }
    eventually("the delivery recorded", || async {
        (count_events(&deployment, "BackchannelLogoutDelivered").await == 1).then_some(())
    })
    .await;
    assert_eq!(
        count_events(&deployment, "BackchannelLogoutScheduled").await,
        1
    );
    assert_eq!(
        count_events(&deployment, "BackchannelLogoutAttemptFailed").await,
        2
    );
    let metrics = api.text("/metrics").await.unwrap_or_default();
    assert!(
        metrics.contains("writ_backchannel_logout_delivered_total 1"),
        "{metrics}"
    );
    assert!(quiet.received().is_empty(), "no id_token, no logout token");
    // The grant's lineage shows each attempt and its outcome.
    let gid = crate::dpop::claims_of(&reply.field("access_token"))["gid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let history = deployment
        .writ(&["--json", "audit", "lineage", "--grant", &gid])
        .success()
        .json();
    let events: Vec<&str> = history
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|row| row["event"].as_str())
                .collect()
        })
        .unwrap_or_default();
    for expected in [
        "SessionEnded",
        "BackchannelLogoutScheduled",
        "BackchannelLogoutAttemptFailed",
        "BackchannelLogoutDelivered",
    ] {
        assert!(events.contains(&expected), "{expected} in {events:?}");
    }
}

async fn sign_out_and_disabling_the_account_send_logout_tokens_too(backend: Backend) {
    let rp = receiver(&[200]).await;
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &["--backchannel-logout-uri", &rp.url]);
    browser::user(&deployment, "alice");
    browser::user(&deployment, "bob");
    let server = deployment.serve();
    let api = Api::new(&server);
    let keys: JwkSet = api.json("/jwks").await;
    let mut sids = Vec::new();
    for (person, state) in [("alice", "a"), ("bob", "b")] {
        let browser = Browser::new(&server);
        let back = browser
            .code_flow(&browser::oidc_params(&app.id, state), person)
            .await;
        let code = back.redirect_query(REDIRECT_URI)["code"].clone();
        let reply = browser::redeem(&api, &app, &code).await;
        let claims = crate::tokens::verified(&reply.field("id_token"), &keys, &app.id, &api.base);
        sids.push(claims["sid"].clone());
    }
    deployment.writ(&["user", "sign-out", "alice"]).success();
    let tokens = rp.wait_for(1).await;
    assert_eq!(
        logout_claims(&tokens[0], &keys, &app.id, &api.base)["sid"],
        sids[0]
    );
    deployment.writ(&["user", "disable", "bob"]).success();
    let tokens = rp.wait_for(2).await;
    assert_eq!(
        logout_claims(&tokens[1], &keys, &app.id, &api.base)["sid"],
        sids[1]
    );
}

async fn a_back_channel_that_never_answers_is_given_up_without_blocking_anyone(backend: Backend) {
    let rp = receiver(&[503]).await;
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &["--backchannel-logout-uri", &rp.url]);
    browser::user(&deployment, "alice");
    let server = deployment.serve_with(&["--backchannel-logout-retry-for", "2s"]);
    let api = Api::new(&server);
    let person = Browser::new(&server);
    let back = person
        .code_flow(&browser::oidc_params(&app.id, "s"), "alice")
        .await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let id_token = browser::redeem(&api, &app, &code).await.field("id_token");
    let signed_out = person
        .get(&format!(
            "/logout?{}",
            oauth::form(&[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", LOGOUT_URI),
            ])
        ))
        .await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    eventually("the logout given up and recorded", || async {
        (count_events(&deployment, "BackchannelLogoutAbandoned").await == 1).then_some(())
    })
    .await;
    assert!(rp.received().len() >= 2, "tried more than once");
    assert_eq!(
        count_events(&deployment, "BackchannelLogoutDelivered").await,
        0
    );
    let metrics = api.text("/metrics").await.unwrap_or_default();
    assert!(
        metrics.contains("writ_backchannel_logout_abandoned_total 1"),
        "{metrics}"
    );
}

async fn registration_takes_only_back_channels_writ_may_call(backend: Backend) {
    const INITIAL: &str = "initial-access-token-for-tests-0123";
    let deployment = Deployment::with_keys(backend).await;
    for bad in [
        "https://192.168.1.1/bc",
        "https://169.254.169.254/latest",
        "http://app.example/bc",
    ] {
        let refused = deployment
            .writ(&[
                "client",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                REDIRECT_URI,
                "--backchannel-logout-uri",
                bad,
            ])
            .refused();
        assert!(
            refused.contains("backchannel_logout_uri"),
            "{bad}: {refused}"
        );
    }
    let server = deployment.serve_with(&["--registration-token", INITIAL]);
    let api = Api::new(&server);
    let register = |uri: &str| {
        let request = api
            .http
            .post(api.url("/register"))
            .bearer_auth(INITIAL)
            .json(&json!({
                "client_name": "RP",
                "redirect_uris": [REDIRECT_URI],
                "backchannel_logout_uri": uri,
                "backchannel_logout_session_required": true,
            }));
        Api::reply(request)
    };
    let before = deployment.event_count().await;
    for bad in [
        "http://10.0.0.1/bc",
        "https://10.1.2.3/bc",
        "https://167772161/bc",
        "https://[64:ff9b::a9fe:a9fe]/latest",
        "https://169.254.169.254/latest/meta-data",
        "https://[fd00::1]/bc",
        "https://100.64.0.1/bc",
        "https://rp.example/bc#fragment",
        "not a uri",
    ] {
        let reply = register(bad).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (400, "invalid_client_metadata"),
            "{bad}: {}",
            reply.body
        );
    }
    assert_eq!(deployment.event_count().await, before);
    let accepted = register("http://127.0.0.1:9/bc").await;
    assert_eq!(accepted.status, 201, "{}", accepted.body);
    assert_eq!(
        accepted.body["backchannel_logout_uri"],
        "http://127.0.0.1:9/bc"
    );
    assert_eq!(accepted.body["backchannel_logout_session_required"], true);
}

async fn a_relying_party_that_refuses_the_token_is_not_asked_again(backend: Backend) {
    let refusing = receiver(&[400]).await;
    let terse = receiver(&[204]).await;
    let deployment = Deployment::with_keys(backend).await;
    let first = browser::web_client(&deployment, &["--backchannel-logout-uri", &refusing.url]);
    let second = browser::web_client(&deployment, &["--backchannel-logout-uri", &terse.url]);
    browser::user(&deployment, "alice");
    let server = deployment.serve();
    let api = Api::new(&server);
    let person = Browser::new(&server);
    let mut id_token = String::new();
    for app in [&first, &second] {
        let back = person
            .code_flow(&browser::oidc_params(&app.id, "s"), "alice")
            .await;
        let code = back.redirect_query(REDIRECT_URI)["code"].clone();
        id_token = browser::redeem(&api, app, &code).await.field("id_token");
    }
    let signed_out = person
        .get(&format!(
            "/logout?{}",
            oauth::form(&[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", LOGOUT_URI),
            ])
        ))
        .await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    eventually("one refused and one delivered", || async {
        let rejected = count_events(&deployment, "BackchannelLogoutRejected").await;
        let delivered = count_events(&deployment, "BackchannelLogoutDelivered").await;
        (rejected == 1 && delivered == 1).then_some(())
    })
    .await;
    assert_eq!(refusing.received().len(), 1, "§2.8: a 400 is not retried");
    assert_eq!(terse.received().len(), 1, "a 204 is delivered");
    assert_eq!(
        count_events(&deployment, "BackchannelLogoutAttemptFailed").await,
        0
    );
}
