//! Shared Signals stream management (SSF 1.0 §7, §8.1) against the real
//! binary: the transmitter's metadata, who may manage streams and how they
//! are refused, a receiver's streams read, listed, changed, paused and
//! deleted, across a restart, and another receiver's kept out of reach.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{Backend, Deployment};
use crate::oauth;
use crate::shared_signals::{receiver_client, Ssf, PUSH, SESSION_REVOKED};

writ_testing::on_both_backends!(receivers_manage_their_own_streams_and_nothing_else);

async fn receivers_manage_their_own_streams_and_nothing_else(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let receiver = receiver_client(&deployment);
    let other = receiver_client(&deployment);
    let unscoped = oauth::client(&deployment, &["--grant-type", "client_credentials"]);
    let server = deployment.serve();
    let ssf = Ssf::new(&server, &receiver).await;
    let issuer = server.url("");

    let discovery = ssf.api.discovery().await;
    let metadata: Value = ssf.api.json("/.well-known/ssf-configuration").await;
    assert_eq!(
        discovery["ssf_configuration_uri"],
        format!(
            "{}/.well-known/ssf-configuration",
            issuer.trim_end_matches('/')
        )
    );
    assert_eq!(metadata["spec_version"], "1_0");
    assert_eq!(metadata["jwks_uri"], discovery["jwks_uri"]);
    assert_eq!(metadata["default_subjects"], "ALL");
    assert_eq!(
        metadata["authorization_schemes"],
        json!([{"spec_urn": "urn:ietf:rfc:6749"}])
    );
    assert_eq!(
        metadata["delivery_methods_supported"],
        json!([PUSH, "urn:ietf:rfc:8936"])
    );
    for endpoint in [
        "configuration_endpoint",
        "status_endpoint",
        "add_subject_endpoint",
        "remove_subject_endpoint",
        "verification_endpoint",
    ] {
        assert!(metadata[endpoint].as_str().is_some(), "{endpoint}");
    }

    // Without a token, with one in the query, without the scope.
    let streams = ssf.api.url("/ssf/streams");
    let bare = ssf
        .api
        .http
        .get(&streams)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert!(bare.headers().contains_key("www-authenticate"));
    let in_query = ssf
        .api
        .http
        .get(format!("{streams}?access_token={}", ssf.token))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(in_query.status(), StatusCode::UNAUTHORIZED);
    assert!(in_query.headers().contains_key("www-authenticate"));
    let no_scope = Ssf::new(&server, &unscoped).await;
    let forbidden = no_scope
        .call(reqwest::Method::GET, "/ssf/streams", None)
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert!(forbidden
        .header("www-authenticate")
        .is_some_and(|h| h.contains("insufficient_scope")));

    // Bad input changes nothing.
    let before = deployment.count("SELECT count(*) FROM events").await;
    for body in [
        json!({"delivery": {"method": "urn:example:carrier-pigeon"}}),
        json!({"delivery": {"method": PUSH}}),
        json!({"delivery": {"method": PUSH, "endpoint_url": "http://10.0.0.7/ssf"}}),
        json!({"delivery": {"method": PUSH, "endpoint_url": "http://169.254.169.254/latest"}}),
        json!({"delivery": {"method": PUSH, "endpoint_url": "http://receiver.example/ssf"}}),
        json!({"delivery": {"method": PUSH, "endpoint_url": "https://[fe80::1]/ssf"}}),
        json!("not an object"),
    ] {
        let reply = ssf
            .call(reqwest::Method::POST, "/ssf/streams", Some(body.clone()))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.error(), "invalid_request", "{body}");
    }
    assert_eq!(
        deployment.count("SELECT count(*) FROM events").await,
        before
    );

    // A poll stream when no delivery is asked for; unknown event types
    // are ignored, not refused.
    let stream_id = ssf
        .create(json!({"events_requested": [SESSION_REVOKED, "urn:example:unknown"], "description": "first"}))
        .await;
    let read = ssf
        .call(
            reqwest::Method::GET,
            &format!("/ssf/streams?stream_id={stream_id}"),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["aud"], receiver.id);
    assert_eq!(read.body["delivery"]["method"], "urn:ietf:rfc:8936");
    assert_eq!(read.body["events_delivered"], json!([SESSION_REVOKED]));
    let second = ssf.create(json!({})).await;
    let listed = ssf.call(reqwest::Method::GET, "/ssf/streams", None).await;
    assert_eq!(
        listed.body.as_array().map(Vec::len),
        Some(2),
        "{}",
        listed.body
    );

    let patched = ssf
        .call(
            reqwest::Method::PATCH,
            "/ssf/streams",
            Some(json!({"stream_id": stream_id, "description": "second"})),
        )
        .await;
    assert_eq!(patched.body["description"], "second");
    assert_eq!(patched.body["events_delivered"], json!([SESSION_REVOKED]));
    let replaced = ssf
        .call(
            reqwest::Method::PUT,
            "/ssf/streams",
            Some(json!({"stream_id": stream_id})),
        )
        .await;
    assert!(
        replaced.body.get("description").is_none(),
        "{}",
        replaced.body
    );
    assert_eq!(
        replaced.body["events_delivered"].as_array().map(Vec::len),
        Some(5)
    );

    let paused = ssf
        .call(
            reqwest::Method::POST,
            "/ssf/status",
            Some(json!({"stream_id": stream_id, "status": "paused", "reason": "maintenance"})),
        )
        .await;
    assert_eq!(
        paused.body,
        json!({"stream_id": stream_id, "status": "paused", "reason": "maintenance"})
    );
    let status = ssf
        .call(
            reqwest::Method::GET,
            &format!("/ssf/status?stream_id={stream_id}"),
            None,
        )
        .await;
    assert_eq!(status.body["status"], "paused");

    // What would skip or repeat SETs, or match nobody, is refused.
    let events = deployment.count("SELECT count(*) FROM events").await;
    let switched = ssf
        .call(
            reqwest::Method::PATCH,
            "/ssf/streams",
            Some(json!({"stream_id": stream_id, "delivery": {"method": PUSH, "endpoint_url": "https://receiver.example/ssf"}})),
        )
        .await;
    assert_eq!(
        switched.status,
        StatusCode::BAD_REQUEST,
        "{}",
        switched.body
    );
    let unmatched = ssf
        .call(
            reqwest::Method::POST,
            "/ssf/subjects/remove",
            Some(json!({"stream_id": stream_id, "subject": {"format": "email", "email": "a@example.com"}})),
        )
        .await;
    assert_eq!(
        unmatched.status,
        StatusCode::BAD_REQUEST,
        "{}",
        unmatched.body
    );
    let flood: Vec<String> = (0..1001).map(|i| format!("{i:020}.{stream_id}")).collect();
    let flooded = ssf
        .call(
            reqwest::Method::POST,
            &format!("/ssf/poll/{stream_id}"),
            Some(json!({"ack": flood, "returnImmediately": true})),
        )
        .await;
    assert_eq!(flooded.status, StatusCode::BAD_REQUEST, "{}", flooded.body);
    let unseen = ssf
        .poll(&stream_id, json!({"ack": [format!("99999999999999999999.{stream_id}")], "returnImmediately": true}))
        .await;
    assert_eq!(
        unseen["sets"],
        json!({}),
        "nothing handed over, nothing to acknowledge"
    );
    assert_eq!(
        deployment.count("SELECT count(*) FROM events").await,
        events
    );

    // Another receiver's stream is as good as absent.
    let stranger = Ssf::new(&server, &other).await;
    for (method, path, body) in [
        (
            reqwest::Method::GET,
            format!("/ssf/streams?stream_id={stream_id}"),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!("/ssf/streams?stream_id={stream_id}"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/ssf/poll/{stream_id}"),
            Some(json!({})),
        ),
        (
            reqwest::Method::POST,
            "/ssf/verify".to_owned(),
            Some(json!({"stream_id": stream_id})),
        ),
    ] {
        let reply = stranger.call(method, &path, body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
    let listed = stranger
        .call(reqwest::Method::GET, "/ssf/streams", None)
        .await;
    assert_eq!(listed.body, json!([]));

    // Streams and their status survive a restart; deleting ends them.
    drop(server);
    let server = deployment.serve();
    let ssf = Ssf::new(&server, &receiver).await;
    let status = ssf
        .call(
            reqwest::Method::GET,
            &format!("/ssf/status?stream_id={stream_id}"),
            None,
        )
        .await;
    assert_eq!(status.body["reason"], "maintenance");
    let deleted = ssf
        .call(
            reqwest::Method::DELETE,
            &format!("/ssf/streams?stream_id={second}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = ssf
        .call(
            reqwest::Method::GET,
            &format!("/ssf/streams?stream_id={second}"),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}
