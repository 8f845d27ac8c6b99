//! Past `--max-in-flight` requests being served, a request waits at most
//! `--queue-wait` and is then shed: 503 with `Retry-After`, RFC 6749's
//! JSON or a page for a browser, nothing recorded, counted in `/metrics`;
//! probes still answer, and once the burst passes requests are served
//! again. A client trickling its body holds no place.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::harness::{Backend, Deployment};
use crate::oauth::{self, Api};
use crate::slow_clients::{connect, read_response};

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn past_max_in_flight_requests_are_shed_at_once_with_retry_after() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let service = oauth::client(&deployment, &[]);
    let server = deployment.serve_with(&[
        "--max-in-flight",
        "1",
        "--queue-wait",
        "1ms",
        "--body-read-timeout",
        "60s",
    ]);
    let api = Api::new(&server);
    assert!(api.try_client_credentials(&service).await.is_some());

    // A body that stops half way holds its connection, not the one place.
    let mut trickling = connect(&server).await;
    trickling
        .write_all(
            b"POST /token HTTP/1.1\r\nHost: writ\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\ngrant_type=",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        api.try_client_credentials(&service).await.is_some(),
        "served while a body trickles in"
    );

    // Bursts of concurrent requests against one place: some are shed.
    let issuance = "SELECT count(*) FROM events WHERE event_type = 'AccessTokenIssued'";
    let events = deployment.count(issuance).await;
    let (shed, issued) = burst_until_shed(&api, &service).await;
    assert_eq!(shed.status, 503);
    assert_eq!(shed.error(), "temporarily_unavailable");
    assert_eq!(shed.header("retry-after").as_deref(), Some("1"));
    assert_eq!(shed.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        deployment.count(issuance).await - events,
        issued,
        "one issuance event per 200, none for a 503"
    );

    // A browser is told the same in a page.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let page = api
            .http
            .get(api.url("/authorize?client_id=x"))
            .header("accept", "text/html")
            .send();
        let (page, _) = tokio::join!(page, burst(&api, &service));
        let page = page.unwrap_or_else(|e| panic!("{e}"));
        if page.status() == 503 {
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
            break;
        }
        assert!(Instant::now() < deadline, "no page was ever shed");
    }

    // Probes and metrics are never shed.
    assert_eq!(api.status("/healthz").await, 200);
    assert_eq!(api.status("/readyz").await, 200);
    let metrics = api.text("/metrics").await.unwrap_or_default();
    let counted = metrics
        .lines()
        .find_map(|line| line.strip_prefix("writ_http_requests_shed_total "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or_default();
    assert!(counted >= 1.0, "{counted}");

    // The trickled body completes and is answered, not shed.
    trickling
        .write_all(format!("{:<89}", "&client_id=x").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = read_response(&mut trickling).await;
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

/// Forty token requests at once; the first 503 among them, and the 200s.
async fn burst(api: &Api, service: &oauth::Creds) -> (Option<oauth::Reply>, i64) {
    let replies = futures::future::join_all(
        (0..40).map(|_| api.token(service, &[("grant_type", "client_credentials")])),
    )
    .await;
    let issued = replies.iter().filter(|r| r.status == 200).count() as i64;
    (replies.into_iter().find(|r| r.status == 503), issued)
}

async fn burst_until_shed(api: &Api, service: &oauth::Creds) -> (oauth::Reply, i64) {
    let deadline = Instant::now() + DEADLINE;
    let mut issued = 0;
    loop {
        let (shed, ok) = burst(api, service).await;
        issued += ok;
        if let Some(shed) = shed {
            return (shed, issued);
        }
        assert!(Instant::now() < deadline, "no burst was ever shed");
    }
}
