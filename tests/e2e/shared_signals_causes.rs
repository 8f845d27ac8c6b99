//! Shared Signals for every cause of a revocation, and for a push receiver
//! that never accepts: a withdrawn consent, a logout and a disabled client
//! each become a `session-revoked` SET naming who started it; a SET its
//! receiver never accepts is given up after the retry window, recorded,
//! counted and shown by the audit API, and the stream goes on.

use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::Router;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::browser::{self, Browser, LOGOUT_URI, REDIRECT_URI};
use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::{self, Api, Creds};
use crate::refresh::{password_app, user, PASSWORD};
use crate::shared_signals::{
    count, event_type, receiver_client, unverified, verified, Ssf, PUSH, SESSION_REVOKED,
    VERIFICATION,
};

writ_testing::on_both_backends!(
    a_withdrawn_consent_a_logout_and_a_disabled_client_are_each_signalled,
    a_set_never_accepted_is_given_up_and_the_stream_goes_on,
);

/// Signs in through the pages and redeems the code; the grant's id.
async fn signed_in(person: &Browser, api: &Api, app: &Creds, params: &[(&str, &str)]) -> String {
    let back = person.code_flow(params, "dana").await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let tokens = browser::redeem(api, app, &code).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    unverified(&tokens.field("access_token"))["gid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn a_withdrawn_consent_a_logout_and_a_disabled_client_are_each_signalled(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let receiver = receiver_client(&deployment);
    let app = browser::web_client(&deployment, &[]);
    let service = oauth::client(&deployment, &["--grant-type", "client_credentials"]);
    browser::user(&deployment, "dana");
    let server = deployment.serve();
    let api = Api::new(&server);
    let ssf = Ssf::new(&server, &receiver).await;
    let stream_id = ssf
        .create(json!({"events_requested": [SESSION_REVOKED]}))
        .await;
    let person = Browser::new(&server);
    let params = browser::oidc_params(&app.id, "s1");
    let withdrawn = signed_in(&person, &api, &app, &params).await;
    person.withdraw_consent(&app.id).await;
    let logged_out = signed_in(&person, &api, &app, &params).await;
    let asked = person
        .get(&format!(
            "/logout?{}",
            oauth::form(&[
                ("client_id", &app.id),
                ("post_logout_redirect_uri", LOGOUT_URI)
            ])
        ))
        .await;
    person
        .post(
            "/logout",
            &[
                ("csrf", &asked.hidden("csrf")),
                ("request", &asked.hidden("request")),
            ],
        )
        .await;
    let token = api.client_credentials(&service).await;
    let disabled = unverified(&token)["gid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    deployment
        .writ(&["client", "disable", &service.id])
        .success();

    let keys = ssf.jwks().await;
    let sets = ssf.sets(&stream_id, 3).await;
    let by_grant: std::collections::HashMap<String, Value> = sets
        .iter()
        .map(|(_, set)| {
            let claims = verified(set, &keys, &receiver.id, &server.url(""));
            assert_eq!(event_type(&claims), SESSION_REVOKED);
            let gid = claims["sub_id"]["session"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (gid, claims)
        })
        .collect();
    let cause = |gid: &str| {
        let body = &by_grant[gid]["events"][SESSION_REVOKED];
        (
            body["initiating_entity"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            body["reason_admin"]["en"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    assert_eq!(cause(&withdrawn).0, "user");
    assert!(
        cause(&withdrawn).1.contains("consent"),
        "{:?}",
        cause(&withdrawn)
    );
    assert_eq!(cause(&logged_out).0, "user");
    assert!(
        cause(&logged_out).1.contains("logged out"),
        "{:?}",
        cause(&logged_out)
    );
    assert_eq!(cause(&disabled).0, "admin");
    assert!(
        cause(&disabled).1.contains("client"),
        "{:?}",
        cause(&disabled)
    );
    assert!(
        by_grant[&disabled]["sub_id"].get("user").is_none(),
        "a client's own grant names no person"
    );
    assert!(by_grant[&logged_out]["sub_id"]["user"]["sub"].is_string());
}

async fn a_set_never_accepted_is_given_up_and_the_stream_goes_on(backend: Backend) {
    const AUDIT: &str = "an-audit-token-for-this-test-only-0123456789";
    let deployment = Deployment::with_keys(backend).await;
    let receiver = receiver_client(&deployment);
    let app = password_app(&deployment, &[]);
    user(&deployment, "alice");
    // Refuses the first SET it is sent, every time; accepts any other.
    let kept: Arc<Mutex<Vec<String>>> = Arc::default();
    let endpoint = {
        let kept = kept.clone();
        let app = Router::new().route(
            "/ssf",
            post(move |body: String| {
                let kept = kept.clone();
                async move {
                    let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                    kept.push(body.clone());
                    if kept[0] == body {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::ACCEPTED
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}/ssf")
    };
    let server = deployment.serve_with(&["--ssf-retry-for", "2s", "--audit-token", AUDIT]);
    let ssf = Ssf::new(&server, &receiver).await;
    let stream_id = ssf
        .create(json!({"delivery": {"method": PUSH, "endpoint_url": endpoint}}))
        .await;
    let reply = ssf.api.password(&app, "alice", PASSWORD).await;
    let gid = unverified(&reply.field("access_token"))["gid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        ssf.api
            .revoke(&app, &reply.field("refresh_token"))
            .await
            .status,
        200
    );
    eventually("the SET abandoned", || async {
        (count(&deployment, "SsfSetAbandoned").await == 1).then_some(())
    })
    .await;
    let attempts = kept.lock().unwrap_or_else(|e| e.into_inner()).len();
    assert!(attempts >= 2, "tried again before giving up: {attempts}");
    // The stream goes on past it.
    let verify = ssf
        .call(
            reqwest::Method::POST,
            "/ssf/verify",
            Some(json!({"stream_id": stream_id})),
        )
        .await;
    assert_eq!(verify.status, StatusCode::NO_CONTENT);
    let keys = ssf.jwks().await;
    let last = eventually("the next SET delivered", || async {
        let kept = kept.lock().unwrap_or_else(|e| e.into_inner()).clone();
        kept.last().filter(|set| **set != kept[0]).cloned()
    })
    .await;
    let claims = verified(&last, &keys, &receiver.id, &server.url(""));
    assert_eq!(event_type(&claims), VERIFICATION);
    let metrics = ssf.api.text("/metrics").await.unwrap_or_default();
    let line = format!("writ_ssf_push_abandoned_total{{stream_id=\"{stream_id}\"}} 1");
    assert!(metrics.contains(&line), "{line}");
    // The audit API shows who was never told.
    let told: Value = ssf
        .api
        .http
        .get(ssf.api.url(&format!("/audit/notifications?grant={gid}")))
        .bearer_auth(AUDIT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(told[0]["stream_id"], stream_id, "{told}");
    assert!(
        told[0]["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("abandoned")),
        "{told}"
    );
    assert!(told[0]["told_at"].is_null());
    let bare = ssf
        .api
        .http
        .get(ssf.api.url(&format!("/audit/notifications?grant={gid}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
}
