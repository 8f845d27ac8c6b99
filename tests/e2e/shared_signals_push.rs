//! Shared Signals push delivery (RFC 8935) against the real binary: a
//! receiver on a local port that fails twice before it accepts gets the
//! same SET three times with its own `Authorization`; paused streams hold
//! their events, disabled ones drop them, and the filter and removed
//! subjects keep the rest out.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode as Status};
use axum::routing::post;
use axum::Router;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{eventually, Backend, Deployment};
use crate::refresh::{password_app, user, PASSWORD};
use crate::shared_signals::{
    claims_sub, count, event_type, receiver_client, unverified, verified, Ssf, CREDENTIAL_CHANGE,
    PUSH, SESSION_REVOKED, VERIFICATION,
};

writ_testing::on_both_backends!(
    a_push_receiver_that_fails_twice_gets_the_same_set_three_times,
    paused_streams_hold_disabled_streams_drop_and_the_filter_filters,
);

/// A push receiver on a port of its own: it answers each SET with the
/// next of `answers` (the last from then on) and keeps every SET and the
/// `Authorization` it came with.
struct PushReceiver {
    url: String,
    kept: Kept,
}

/// Each SET received, with the `Authorization` it came with.
type Kept = Arc<Mutex<Vec<(String, Option<String>)>>>;
type PushState = (Kept, Vec<u16>);

async fn push_receiver(answers: &[u16]) -> PushReceiver {
    let kept: Kept = Arc::default();
    let app = Router::new()
        .route(
            "/ssf",
            post(
                |axum::extract::State((kept, answers)): axum::extract::State<PushState>,
                 headers: HeaderMap,
                 body: String| async move {
                    assert_eq!(
                        headers.get("content-type").and_then(|v| v.to_str().ok()),
                        Some("application/secevent+jwt")
                    );
                    let authorization = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                    kept.push((body, authorization));
                    let answer = answers
                        .get(kept.len() - 1)
                        .or(answers.last())
                        .copied()
                        .unwrap_or(202);
                    Status::from_u16(answer).unwrap_or(Status::ACCEPTED)
                },
            ),
        )
        .with_state((kept.clone(), answers.to_vec()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    PushReceiver {
        url: format!("http://{address}/ssf"),
        kept,
    }
}

impl PushReceiver {
    fn received(&self) -> Vec<(String, Option<String>)> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<(String, Option<String>)> {
        eventually(&format!("{count} pushed SETs"), || async {
            let received = self.received();
            (received.len() >= count).then_some(received)
        })
        .await
    }
}

async fn a_push_receiver_that_fails_twice_gets_the_same_set_three_times(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let receiver = receiver_client(&deployment);
    let app = password_app(&deployment, &[]);
    user(&deployment, "alice");
    let pushed = push_receiver(&[500, 503, 202]).await;
    let server = deployment.serve();
    let ssf = Ssf::new(&server, &receiver).await;
    const SECRET: &str = "Bearer receiver-secret-7f3a";
    let stream_id = ssf
        .create(json!({
            "delivery": {"method": PUSH, "endpoint_url": pushed.url, "authorization_header": SECRET},
            "events_requested": [SESSION_REVOKED],
        }))
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
    let received = pushed.wait_for(3).await;
    assert!(
        received.iter().all(|(set, _)| *set == received[0].0),
        "retries send the same SET"
    );
    assert!(received
        .iter()
        .all(|(_, auth)| auth.as_deref() == Some(SECRET)));
    let keys = ssf.jwks().await;
    let claims = verified(&received[0].0, &keys, &receiver.id, &server.url(""));
    assert_eq!(event_type(&claims), SESSION_REVOKED);
    eventually("the delivery recorded", || async {
        (count(&deployment, "SsfSetsDelivered").await == 1).then_some(())
    })
    .await;
    let metrics = ssf.api.text("/metrics").await.unwrap_or_default();
    for (name, value) in [
        ("writ_ssf_push_delivered_total", 1),
        ("writ_ssf_push_failed_attempts_total", 2),
    ] {
        let line = format!("{name}{{stream_id=\"{stream_id}\"}} {value}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    let told = deployment
        .writ(&["--json", "audit", "notifications", "--grant", &gid])
        .success()
        .json();
    assert_eq!(told[0]["method"], "push", "{told}");
    assert_eq!(
        told[0]["outcome"], "acknowledged",
        "the 202 is the acknowledgement"
    );
    assert_eq!(told[0]["told_at"], told[0]["acknowledged_at"]);
    // The receiver's secret is sealed in the log, never in clear.
    let leaked = deployment
        .count(
            "SELECT count(*) FROM events WHERE CAST(payload AS text) LIKE '%receiver-secret-7f3a%'",
        )
        .await;
    assert_eq!(leaked, 0);
    // After a restart, which loads the stream from its snapshot and
    // events, the next revocation arrives once, first time, and nothing
    // delivered before is sent again.
    drop(server);
    let server = deployment.serve();
    let ssf = Ssf::new(&server, &receiver).await;
    let other = ssf.api.password(&app, "alice", PASSWORD).await;
    assert_eq!(
        ssf.api
            .revoke(&app, &other.field("refresh_token"))
            .await
            .status,
        200
    );
    let received = pushed.wait_for(4).await;
    assert_ne!(received[3].0, received[0].0);
    assert_eq!(pushed.received().len(), 4);
}

async fn paused_streams_hold_disabled_streams_drop_and_the_filter_filters(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let receiver = receiver_client(&deployment);
    user(&deployment, "alice");
    let pushed = push_receiver(&[202]).await;
    let server = deployment.serve();
    let ssf = Ssf::new(&server, &receiver).await;
    let stream_id = ssf
        .create(json!({
            "delivery": {"method": PUSH, "endpoint_url": pushed.url},
            "events_requested": [CREDENTIAL_CHANGE],
        }))
        .await;
    let set_status = |status: &'static str| {
        let (ssf, stream_id) = (&ssf, stream_id.clone());
        async move {
            let reply = ssf
                .call(
                    reqwest::Method::POST,
                    "/ssf/status",
                    Some(json!({"stream_id": stream_id, "status": status})),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        }
    };
    let set_password = |password: &'static str| {
        deployment
            .writ_with_stdin(
                &["user", "set-password", "alice", "--password-stdin"],
                &format!("{password}\n"),
            )
            .success();
    };
    set_status("paused").await;
    set_password("held one");
    deployment.writ(&["user", "disable", "alice"]).success();
    deployment.writ(&["user", "enable", "alice"]).success();
    assert_eq!(count(&deployment, "PasswordChanged").await, 1);
    set_status("enabled").await;
    let received = pushed.wait_for(1).await;
    let keys = ssf.jwks().await;
    let claims = verified(&received[0].0, &keys, &receiver.id, &server.url(""));
    assert_eq!(
        event_type(&claims),
        CREDENTIAL_CHANGE,
        "held while paused, and filtered"
    );
    set_status("disabled").await;
    set_password("dropped one");
    set_status("enabled").await;
    set_password("delivered one");
    let received = pushed.wait_for(2).await;
    let claims = verified(&received[1].0, &keys, &receiver.id, &server.url(""));
    let last_change = deployment
        .count("SELECT count(*) FROM events WHERE event_type = 'PasswordChanged'")
        .await;
    assert_eq!(last_change, 3);
    assert_eq!(event_type(&claims), CREDENTIAL_CHANGE);
    // The dropped one never comes: a third verification proves the
    // stream is past it.
    let verify = ssf
        .call(
            reqwest::Method::POST,
            "/ssf/verify",
            Some(json!({"stream_id": stream_id})),
        )
        .await;
    assert_eq!(verify.status, StatusCode::NO_CONTENT);
    let received = pushed.wait_for(3).await;
    assert_eq!(received.len(), 3);
    let claims = verified(&received[2].0, &keys, &receiver.id, &server.url(""));
    assert_eq!(event_type(&claims), VERIFICATION);

    // A removed subject's events are not sent.
    let removed = ssf
        .call(
            reqwest::Method::POST,
            "/ssf/subjects/remove",
            Some(json!({"stream_id": stream_id, "subject": claims_sub(&received[1].0)})),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    set_password("about a removed subject");
    ssf.call(
        reqwest::Method::POST,
        "/ssf/verify",
        Some(json!({"stream_id": stream_id})),
    )
    .await;
    let received = pushed.wait_for(4).await;
    let claims = verified(&received[3].0, &keys, &receiver.id, &server.url(""));
    assert_eq!(event_type(&claims), VERIFICATION);
}
