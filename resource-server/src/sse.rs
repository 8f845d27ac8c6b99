//! Feeding the deny-list from Writ's server-sent-event feed
//! (`GET /revocations` on the query API), for deployments without Kafka.
//! The feed is resumed from the last cursor applied after any break; the
//! server reports ready at the feed's `caught_up` event.

use std::time::Duration;

use writ_protocol::revocation::Revocation;

use crate::verify::ResourceServer;

/// Where the feed is and the client credentials it is read with.
#[derive(Clone)]
pub struct SseFeed {
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Follows the feed until the task is dropped, reconnecting after breaks.
pub async fn follow_sse(server: ResourceServer, feed: SseFeed) {
    let http = reqwest::Client::new();
    let mut last_id: Option<String> = None;
    loop {
        if let Err(err) = follow_once(&server, &http, &feed, &mut last_id).await {
            tracing::warn!(error = %err, url = %feed.url, "revocation feed interrupted; reconnecting");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn follow_once(
    server: &ResourceServer,
    http: &reqwest::Client,
    feed: &SseFeed,
    last_id: &mut Option<String>,
) -> Result<(), reqwest::Error> {
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
    let mut response = request.send().await?.error_for_status()?;
    let mut buffer = String::new();
    let mut event = PendingEvent::default();
    while let Some(chunk) = response.chunk().await? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                dispatch(server, std::mem::take(&mut event), last_id);
            } else {
                event.field(line);
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct PendingEvent {
    kind: Option<String>,
    id: Option<String>,
    data: String,
}

impl PendingEvent {
    /// One `field: value` line (comments, `:` first, are keep-alives).
    fn field(&mut self, line: &str) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "event" => self.kind = Some(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
    }
}

fn dispatch(server: &ResourceServer, event: PendingEvent, last_id: &mut Option<String>) {
    match event.kind.as_deref() {
        Some("revocation") => match serde_json::from_str::<Revocation>(&event.data) {
            Ok(revocation) => {
                server.apply(&revocation);
                if event.id.is_some() {
                    *last_id = event.id;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "an event on the revocation feed is not a revocation; skipped")
            }
        },
        Some("caught_up") => server.mark_ready(),
        _ => {}
    }
}
