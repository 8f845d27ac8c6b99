//! Feeding the deny-list from Writ's server-sent-event feed
//! (`GET /revocations` on the query API), for deployments without Kafka.
//! The feed is resumed from the last cursor applied after any break; the
//! server reports ready at the feed's `caught_up` event.

use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use writ_protocol::revocation::Revocation;

use crate::verify::ResourceServer;

/// Where the feed is and the client credentials it is read with.
#[derive(Clone)]
pub struct SseFeed {
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
}

/// How long to wait before reconnecting when the server has not said.
const DEFAULT_RECONNECT: Duration = Duration::from_millis(200);
/// The longest wait a server's `retry:` or `Retry-After` can ask for.
const MAX_RECONNECT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
enum FeedError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Stream(#[from] EventStreamError<reqwest::Error>),
    #[error("refused with {status}")]
    Refused {
        status: reqwest::StatusCode,
        retry_after: Option<Duration>,
    },
}

/// Follows the feed until the task is dropped, reconnecting after breaks:
/// after the server's `retry:` field if it sent one, after a refusal's
/// `Retry-After` (too many streams answer 429 with one).
pub async fn follow_sse(server: ResourceServer, feed: SseFeed) {
    let http = reqwest::Client::new();
    let mut last_id: Option<String> = None;
    let mut reconnect = DEFAULT_RECONNECT;
    loop {
        let outcome = follow_once(&server, &http, &feed, &mut last_id, &mut reconnect).await;
        if let Err(err) = &outcome {
            tracing::warn!(error = %err, url = %feed.url, "revocation feed interrupted; reconnecting");
        }
        tokio::time::sleep(wait_before_reconnecting(&outcome, reconnect)).await;
    }
}

/// A refusal's `Retry-After` wins over the stream's reconnection time.
fn wait_before_reconnecting(outcome: &Result<(), FeedError>, reconnect: Duration) -> Duration {
    match outcome {
        Err(FeedError::Refused {
            retry_after: Some(after),
            ..
        }) => (*after).min(MAX_RECONNECT),
        _ => reconnect,
    }
}

async fn follow_once(
    server: &ResourceServer,
    http: &reqwest::Client,
    feed: &SseFeed,
    last_id: &mut Option<String>,
    reconnect: &mut Duration,
) -> Result<(), FeedError> {
    let mut request = http
        .get(&feed.url)
        .header(
            reqwest::header::AUTHORIZATION,
            crate::basic::authorization(&feed.client_id, &feed.client_secret),
        )
        .header("accept", "text/event-stream");
    if let Some(id) = last_id.as_deref() {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(FeedError::Refused {
            status,
            retry_after,
        });
    }
    apply_events(server, response.bytes_stream(), last_id, reconnect).await?;
    Ok(())
}

/// Applies each event of one response body until it ends. The parser
/// (`eventsource-stream`) decodes UTF-8 across chunk boundaries, so a
/// character split between two reads arrives whole. It reports `retry:`
/// with an event that carries data, which is where Writ would send it.
pub async fn apply_events<S, B, E>(
    server: &ResourceServer,
    body: S,
    last_id: &mut Option<String>,
    reconnect: &mut Duration,
) -> Result<(), EventStreamError<E>>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    let mut events = std::pin::pin!(body.eventsource());
    while let Some(event) = events.next().await {
        let event = event?;
        if let Some(retry) = event.retry {
            *reconnect = retry.min(MAX_RECONNECT);
        }
        dispatch(server, event, last_id);
    }
    Ok(())
}

fn dispatch(server: &ResourceServer, event: Event, last_id: &mut Option<String>) {
    match event.event.as_str() {
        "revocation" => match serde_json::from_str::<Revocation>(&event.data) {
            Ok(revocation) => {
                server.apply(&revocation);
                if !event.id.is_empty() {
                    *last_id = Some(event.id);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "an event on the revocation feed is not a revocation; skipped")
            }
        },
        "caught_up" => server.mark_ready(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::Config;

    fn revocation_event(id: &str) -> String {
        let data = serde_json::json!({
            "version": 1, "type": "token_revoked", "jtis": ["j1"], "gid": "g1",
            "client_id": "app", "sub": null, "revoked_at": "2026-12-05T10:00:00Z",
            "expires_at": "2999-01-01T00:00:00Z", "reason": "révoqué", "cursor": id,
        });
        format!("event: revocation\nid: {id}\nretry: 1500\ndata: {data}\n\n")
    }

    #[tokio::test]
    async fn a_character_split_across_chunks_arrives_whole() {
        let server = ResourceServer::new(Config::new("https://writ.example", "api"));
        let text = format!(
            "{}event: caught_up\ndata: {{}}\n\n",
            revocation_event("curseur-é")
        );
        let bytes = text.as_bytes();
        let split = text.find('é').map(|at| at + 1).unwrap_or_default();
        assert!(!text.is_char_boundary(split), "the split falls inside é");
        let chunks = vec![
            Ok::<_, Infallible>(bytes[..split].to_vec()),
            Ok(bytes[split..].to_vec()),
        ];
        let mut last_id = None;
        let mut reconnect = DEFAULT_RECONNECT;
        apply_events(
            &server,
            futures::stream::iter(chunks),
            &mut last_id,
            &mut reconnect,
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(last_id.as_deref(), Some("curseur-é"));
        assert_eq!(server.messages_applied(), 1);
        assert_eq!(server.lag().0.as_deref(), Some("curseur-é"));
        assert_eq!(reconnect, Duration::from_millis(1500));
        assert!(server.is_ready());
    }

    #[test]
    fn a_refusal_is_retried_after_its_retry_after_and_a_break_after_the_reconnection_time() {
        let refused = |retry_after| {
            Err(FeedError::Refused {
                status: reqwest::StatusCode::TOO_MANY_REQUESTS,
                retry_after,
            })
        };
        let reconnect = Duration::from_millis(1500);
        assert_eq!(
            wait_before_reconnecting(&refused(Some(Duration::from_secs(10))), reconnect),
            Duration::from_secs(10)
        );
        assert_eq!(
            wait_before_reconnecting(&refused(Some(Duration::from_secs(86_400))), reconnect),
            MAX_RECONNECT
        );
        assert_eq!(
            wait_before_reconnecting(&refused(None), reconnect),
            reconnect
        );
        assert_eq!(wait_before_reconnecting(&Ok(()), reconnect), reconnect);
    }

    #[tokio::test]
    async fn a_server_cannot_ask_for_a_wait_longer_than_the_cap() {
        let server = ResourceServer::new(Config::new("https://writ.example", "api"));
        let chunks = vec![Ok::<_, Infallible>(
            b"retry: 99999999\ndata: -\n\n".to_vec(),
        )];
        let mut reconnect = DEFAULT_RECONNECT;
        apply_events(
            &server,
            futures::stream::iter(chunks),
            &mut None,
            &mut reconnect,
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(reconnect, MAX_RECONNECT);
        assert!(!server.is_ready());
    }
}
