//! The revocations' three receivers: the Kafka topic and the query API's
//! feed, read whole at the end, and a Shared Signals poller that polls and
//! acknowledges throughout the run, as a receiver does.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use serde_json::{json, Value};
use writ_domain::cursor::Cursor;
use writ_infra::kafka::KafkaSettings;

use crate::writ_process::Registered;

/// A revocation as a receiver got it: its key (the topic's message key)
/// and the cursor it names. On PostgreSQL the log's order is the cursors'
/// (writing transaction, then position), not the positions'.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub cursor: Cursor,
}

fn cursor(raw: &str) -> Option<Cursor> {
    Cursor::from_str(raw).ok()
}

/// The topic from its start until every position in `expected` has
/// arrived, or nothing new has for `quiet`.
pub async fn topic(
    brokers: &str,
    expected: &HashSet<i64>,
    quiet: Duration,
) -> Result<Vec<Received>, String> {
    let kafka = KafkaSettings::new(brokers.to_owned());
    let consumer: StreamConsumer = kafka
        .client_config()
        .set("group.id", format!("soak-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| e.to_string())?;
    consumer
        .subscribe(&[&kafka.topic])
        .map_err(|e| e.to_string())?;
    let mut received = Vec::new();
    let mut missing: HashSet<i64> = expected.clone();
    while !missing.is_empty() {
        let Ok(message) = tokio::time::timeout(quiet, consumer.recv()).await else {
            break;
        };
        let message = message.map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_slice(message.payload().unwrap_or_default())
            .map_err(|e| format!("a message on the topic: {e}"))?;
        let at = body["cursor"]
            .as_str()
            .and_then(cursor)
            .ok_or_else(|| format!("a message without a cursor: {body}"))?;
        missing.remove(&at.position);
        received.push(Received {
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            cursor: at,
        });
    }
    Ok(received)
}

/// `GET /revocations` from the start of the log to its `caught_up` event.
pub async fn feed(query_url: &str, reader: &Registered) -> Result<Vec<Cursor>, String> {
    let response = reqwest::Client::new()
        .get(format!("{query_url}/revocations"))
        .header("authorization", reader.basic())
        .header("accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("the feed answered {}", response.status()));
    }
    let mut events = std::pin::pin!(response.bytes_stream().eventsource());
    let mut cursors = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .map_err(|_| "the feed went quiet before caught_up".to_owned())?;
        let event = match next {
            Some(event) => event.map_err(|e| e.to_string())?,
            None => return Err("the feed ended before caught_up".into()),
        };
        match event.event.as_str() {
            "caught_up" => return Ok(cursors),
            "revocation" => {
                let body: Value = serde_json::from_str(&event.data).map_err(|e| e.to_string())?;
                cursors.push(
                    body["cursor"]
                        .as_str()
                        .and_then(cursor)
                        .ok_or_else(|| format!("an event without a cursor: {body}"))?,
                );
            }
            _ => {}
        }
    }
}

/// A poll-delivery stream's receiver: each poll acknowledges the last
/// one's SETs; every batch is kept in the order it came.
pub struct Poller {
    command_url: String,
    receiver: Registered,
    stream_id: String,
    http: reqwest::Client,
    pub batches: Vec<Vec<Cursor>>,
    pub failed_polls: u64,
}

impl Poller {
    pub async fn create(command_url: String, receiver: Registered) -> Result<Self, String> {
        let mut poller = Self {
            command_url,
            receiver,
            stream_id: String::new(),
            http: reqwest::Client::new(),
            batches: Vec::new(),
            failed_polls: 0,
        };
        let token = poller.token().await?;
        let created = poller
            .http
            .post(format!("{}/ssf/streams", poller.command_url))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if created.status() != 201 {
            return Err(format!("creating a stream: {}", created.status()));
        }
        let body: Value = created.json().await.map_err(|e| e.to_string())?;
        poller.stream_id = body["stream_id"].as_str().unwrap_or_default().to_owned();
        Ok(poller)
    }

    async fn token(&self) -> Result<String, String> {
        let reply: Value = self
            .http
            .post(format!("{}/token", self.command_url))
            .header("authorization", self.receiver.basic())
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "ssf.manage"),
            ])
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        reply["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no access token for the receiver".into())
    }

    /// One poll acknowledging `ack`; the SETs' `jti`s and positions.
    async fn poll(&self, token: &str, ack: &[String]) -> Result<Vec<(String, Cursor)>, String> {
        let reply = self
            .http
            .post(format!("{}/ssf/poll/{}", self.command_url, self.stream_id))
            .bearer_auth(token)
            .json(&json!({"ack": ack, "maxEvents": 500, "returnImmediately": true}))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if reply.status() != 200 {
            return Err(format!("poll: {}", reply.status()));
        }
        let body: Value = reply.json().await.map_err(|e| e.to_string())?;
        let mut sets: Vec<(String, Cursor)> = body["sets"]
            .as_object()
            .map(|sets| {
                sets.keys()
                    .filter_map(|jti| {
                        let at = jti.split_once('.').and_then(|(at, _)| cursor(at))?;
                        Some((jti.clone(), at))
                    })
                    .collect()
            })
            .unwrap_or_default();
        sets.sort_by_key(|(_, at)| *at);
        Ok(sets)
    }

    /// Polls every `every` until `stop` (set once the log has settled),
    /// then until three polls in a row come back empty, or two minutes.
    pub async fn run(
        mut self,
        every: Duration,
        stop: Arc<AtomicBool>,
        polls: Arc<AtomicU64>,
    ) -> Self {
        let mut token = String::new();
        let mut ack: Vec<String> = Vec::new();
        let mut empty_after_stop = 0;
        let deadline_after_stop = Duration::from_secs(120);
        let mut stopped_at: Option<Instant> = None;
        loop {
            if stop.load(Ordering::Relaxed) && stopped_at.is_none() {
                stopped_at = Some(Instant::now());
            }
            if stopped_at.is_some_and(|at| at.elapsed() > deadline_after_stop)
                || empty_after_stop >= 3
            {
                return self;
            }
            if token.is_empty() {
                token = self.token().await.unwrap_or_default();
            }
            match self.poll(&token, &ack).await {
                Ok(sets) => {
                    polls.fetch_add(1, Ordering::Relaxed);
                    ack = sets.iter().map(|(jti, _)| jti.clone()).collect();
                    if !sets.is_empty() {
                        empty_after_stop = 0;
                    } else if stopped_at.is_some() {
                        empty_after_stop += 1;
                    }
                    if !sets.is_empty() {
                        self.batches
                            .push(sets.into_iter().map(|(_, at)| at).collect());
                    }
                }
                Err(message) => {
                    self.failed_polls += 1;
                    if message.contains("401") {
                        token.clear();
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}
