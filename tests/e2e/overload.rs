//! Past `--max-in-flight` requests being served, a request waits at most
//! `--queue-wait` and is then shed: 503 at once with `Retry-After`, RFC
//! 6749's JSON or a page for a browser, nothing recorded, counted in
//! `/metrics`; probes still answer, and once a place frees up requests are
//! served again. A request is held in flight with a body that never
//! finishes arriving.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::harness::{Backend, Deployment};
use crate::oauth::{self, Api};
use crate::slow_clients::{connect, read_response};

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn past_max_in_flight_requests_are_shed_at_once_with_retry_after() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let service = oauth::client(&deployment, &[]);
    let server = deployment.serve_with(&[
        "--max-in-flight",
        "1",
        "--queue-wait",
        "20ms",
        "--body-read-timeout",
        "60s",
    ]);
    let api = Api::new(&server);
    assert!(api.try_client_credentials(&service).await.is_some());

    // The one place: a token request whose body stops half way.
    let mut held = connect(&server).await;
    held.write_all(
        b"POST /token HTTP/1.1\r\nHost: writ\r\n\
          Content-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\ngrant_type=",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let events = deployment.event_count().await;
    let shed = wait_for_shedding(&api, &service).await;
    assert_eq!(shed.status, 503);
    assert_eq!(shed.error(), "temporarily_unavailable");
    assert_eq!(shed.header("retry-after").as_deref(), Some("1"));
    assert_eq!(shed.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(deployment.event_count().await, events, "nothing recorded");

    // Shed after the queue wait, not after the held request's 60 s.
    let started = Instant::now();
    assert_eq!(
        api.token(&service, &[("grant_type", "client_credentials")])
            .await
            .status,
        503
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let page = api
        .http
        .get(api.url("/authorize?client_id=x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.status(), 503);
    assert_eq!(
        page.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert!(page
        .text()
        .await
        .unwrap_or_default()
        .contains("Writ is busy"));

    // Probes and metrics are never shed.
    assert_eq!(api.status("/healthz").await, 200);
    assert_eq!(api.status("/readyz").await, 200);
    let metrics = api.text("/metrics").await.unwrap_or_default();
    let counted = metrics
        .lines()
        .find_map(|line| line.strip_prefix("writ_http_requests_shed_total "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or_default();
    assert!(counted >= 3.0, "{counted}");
    assert!(
        metrics.contains("writ_http_requests_in_flight 1"),
        "the held request"
    );

    // The held request finishes; the place is given back.
    held.write_all(format!("{:<89}", "&client_id=x").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = read_response(&mut held).await;
    assert!(
        answer.starts_with("HTTP/1.1 40"),
        "answered, not shed: {answer}"
    );
    let deadline = Instant::now() + DEADLINE;
    while api.try_client_credentials(&service).await.is_none() {
        assert!(Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first 503: the held request may take a moment to be admitted.
async fn wait_for_shedding(api: &Api, service: &oauth::Creds) -> oauth::Reply {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let reply = api
            .token(service, &[("grant_type", "client_credentials")])
            .await;
        if reply.status == 503 || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
