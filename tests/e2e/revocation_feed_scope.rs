//! The revocation feed is per client (issue 20): only clients with the
//! `revocation_feed` setting subscribe; each sees the revocations of its
//! own tokens and of tokens whose audience names it, `sub` only where it
//! has a right to it; a disabled client's stream ends; streams per client
//! are capped. Read raw, event by event, so what was not sent is checked
//! too: the feed is in log order, so once a later message arrived, an
//! earlier one that was due would have come first.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Backend, Deployment};
use crate::oauth::{self, Api, Creds};
use crate::refresh::{password_app, user, PASSWORD};

writ_testing::on_both_backends!(
    a_client_without_the_setting_gets_403_and_no_event,
    each_subscriber_gets_only_what_concerns_its_tokens_or_its_audience,
    the_audience_gets_sub_only_where_the_deny_rule_needs_it,
    a_stream_ends_when_its_client_is_disabled_or_loses_the_setting,
    streams_per_client_are_capped_with_429,
);

/// How long a test waits for one event before it fails.
const WAIT: Duration = Duration::from_secs(20);

struct SseEvent {
    event: String,
    data: String,
}

impl SseEvent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// One open `GET /revocations`, read event by event.
struct Feed {
    response: reqwest::Response,
    buffer: String,
}

impl Feed {
    async fn open(api: &Api, creds: &Creds) -> Result<Feed, (u16, Option<String>, Value)> {
        let response = api
            .http
            .get(api.url("/revocations"))
            .basic_auth(&creds.id, Some(&creds.secret))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if response.status() != 200 {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.json().await.unwrap_or(Value::Null);
            return Err((status, retry_after, body));
        }
        Ok(Feed {
            response,
            buffer: String::new(),
        })
    }

    async fn caught_up(api: &Api, creds: &Creds) -> Feed {
        let mut feed = Feed::open(api, creds)
            .await
            .unwrap_or_else(|(status, _, body)| panic!("{status} {body}"));
        loop {
            match feed.next().await {
                Some(event) if event.event == "caught_up" => return feed,
                Some(_) => {}
                None => panic!("the stream ended before it caught up"),
            }
        }
    }

    /// The next event; `None` once the stream ended. Fails the test after
    /// [`WAIT`] without one.
    async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(WAIT, self.read())
            .await
            .unwrap_or_else(|_| panic!("no event and no end within {WAIT:?}"))
    }

    async fn read(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                // Keep-alive comments carry no event.
                if !event.is_empty() {
                    return Some(SseEvent { event, data });
                }
                continue;
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next revocation message.
    async fn revocation(&mut self) -> Value {
        loop {
            match self.next().await {
                Some(event) if event.event == "revocation" => return event.json(),
                Some(_) => {}
                None => panic!("the stream ended"),
            }
        }
    }
}

fn subscriber(deployment: &Deployment) -> Creds {
    oauth::client(deployment, &["--revocation-feed"])
}

async fn a_client_without_the_setting_gets_403_and_no_event(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let stranger = oauth::client(&deployment, &[]);
    let writ = deployment.serve();
    let api = Api::new(&writ);
    let token = api.client_credentials(&stranger).await;
    assert_eq!(api.revoke(&stranger, &token).await.status, 200);

    let refused = Feed::open(&api, &stranger).await.err();
    let (status, _, body) = refused.unwrap_or_else(|| panic!("the stranger got a stream"));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "unauthorized_client", "{body}");
    assert!(body["error_description"].is_string(), "{body}");

    let anonymous = api.http.get(api.url("/revocations")).send().await;
    let anonymous = anonymous.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(anonymous.status().as_u16(), 401);
    let body: Value = anonymous.json().await.unwrap_or(Value::Null);
    assert_eq!(body["error"], "invalid_client");

    // A malformed query gets an RFC 6749 error, not axum's plain text.
    let feeder = subscriber(&deployment);
    let repeated = api
        .http
        .get(api.url("/revocations?after=1&after=2"))
        .basic_auth(&feeder.id, Some(&feeder.secret))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(repeated.status().as_u16(), 400);
    let body: Value = repeated.json().await.unwrap_or(Value::Null);
    assert_eq!(body["error"], "invalid_request", "{body}");
}

async fn each_subscriber_gets_only_what_concerns_its_tokens_or_its_audience(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let (api_a, api_b) = (subscriber(&deployment), subscriber(&deployment));
    let service_a = oauth::client(&deployment, &["--audience", &api_a.id]);
    let service_b = oauth::client(&deployment, &["--audience", &api_b.id]);
    let unrelated = oauth::client(&deployment, &[]);
    let writ = deployment.serve();
    let api = Api::new(&writ);
    let mut feed_a = Feed::caught_up(&api, &api_a).await;
    let mut feed_b = Feed::caught_up(&api, &api_b).await;

    let token = api.client_credentials(&unrelated).await;
    assert_eq!(api.revoke(&unrelated, &token).await.status, 200);
    deployment
        .writ(&["client", "disable", &unrelated.id])
        .success();
    let token = api.client_credentials(&service_b).await;
    assert_eq!(api.revoke(&service_b, &token).await.status, 200);
    let token = api.client_credentials(&service_a).await;
    assert_eq!(api.revoke(&service_a, &token).await.status, 200);

    // In log order: anything of the unrelated client would come first.
    let first_b = feed_b.revocation().await;
    assert_eq!(
        (first_b["type"].as_str(), first_b["client_id"].as_str()),
        (Some("token_revoked"), Some(service_b.id.as_str())),
        "{first_b}"
    );
    let first_a = feed_a.revocation().await;
    assert_eq!(
        (first_a["type"].as_str(), first_a["client_id"].as_str()),
        (Some("token_revoked"), Some(service_a.id.as_str())),
        "A sees neither the unrelated client's revocation and disabling nor B's: {first_a}"
    );
    assert_eq!(first_a["jtis"].as_array().map(Vec::len), Some(1));
}

async fn the_audience_gets_sub_only_where_the_deny_rule_needs_it(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let resource = subscriber(&deployment);
    let app = password_app(
        &deployment,
        &["--audience", &resource.id, "--revocation-feed"],
    );
    user(&deployment, "alice");
    let writ = deployment.serve();
    let api = Api::new(&writ);
    let mut owner = Feed::caught_up(&api, &app).await;
    let mut audience = Feed::caught_up(&api, &resource).await;

    let reply = api.password(&app, "alice", PASSWORD).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let sub = api.introspect(&app, &reply.field("access_token")).await["sub"].clone();
    assert!(sub.is_string(), "{sub}");
    assert_eq!(
        api.revoke(&app, &reply.field("refresh_token")).await.status,
        200
    );

    let whole = owner.revocation().await;
    assert_eq!(whole["type"], "grant_revoked", "{whole}");
    assert_eq!(whole["sub"], sub, "the owner was given the subject");
    let seen = audience.revocation().await;
    assert_eq!(
        (&seen["type"], &seen["gid"]),
        (&whole["type"], &whole["gid"]),
        "{seen}"
    );
    assert_eq!(seen["sub"], Value::Null, "the gid suffices: {seen}");
    assert_eq!(seen["cursor"], whole["cursor"]);

    deployment.writ(&["user", "disable", "alice"]).success();
    let disabled = audience.revocation().await;
    assert_eq!(disabled["type"], "account_disabled", "{disabled}");
    assert_eq!(disabled["sub"], sub, "the subject rule needs it");
    assert_eq!(owner.revocation().await["sub"], sub);
}

async fn a_stream_ends_when_its_client_is_disabled_or_loses_the_setting(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let (disabled, demoted) = (subscriber(&deployment), subscriber(&deployment));
    let writ = deployment.serve_with(&["--revocation-feed-recheck", "200ms"]);
    let api = Api::new(&writ);
    let mut feed = Feed::caught_up(&api, &disabled).await;
    let mut other = Feed::caught_up(&api, &demoted).await;

    deployment
        .writ(&["client", "disable", &disabled.id])
        .success();
    while let Some(event) = feed.next().await {
        assert_ne!(event.event, "revocation", "{}", event.data);
    }

    deployment
        .writ(&["client", "update", &demoted.id, "--revocation-feed=false"])
        .success();
    while let Some(event) = other.next().await {
        assert_ne!(event.event, "revocation", "{}", event.data);
    }
    let again = Feed::open(&api, &demoted)
        .await
        .err()
        .map(|(status, ..)| status);
    assert_eq!(again, Some(403));
}

async fn streams_per_client_are_capped_with_429(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let (capped, other) = (subscriber(&deployment), subscriber(&deployment));
    let writ = deployment.serve_with(&["--revocation-feed-streams", "2"]);
    let api = Api::new(&writ);
    let first = Feed::caught_up(&api, &capped).await;
    let _second = Feed::caught_up(&api, &capped).await;

    let refused = Feed::open(&api, &capped).await.err();
    let (status, retry_after, body) = refused.unwrap_or_else(|| panic!("a third stream opened"));
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(
        retry_after.and_then(|s| s.parse::<u64>().ok()).is_some(),
        "Retry-After in seconds"
    );
    let _other = Feed::caught_up(&api, &other).await;

    drop(first);
    let reopened = crate::harness::eventually("a closed stream's place to be freed", || async {
        Feed::open(&api, &capped).await.ok()
    })
    .await;
    drop(reopened);
}
