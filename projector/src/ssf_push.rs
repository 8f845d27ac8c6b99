//! Shared Signals push delivery (RFC 8935): every enabled push stream is
//! walked through the log from its own offset, and each signal it takes
//! is POSTed to its receiver as one SET. Only a 202 delivers; anything
//! else is tried again, waiting 1 s and doubling up to 30 s, until the
//! retry window closes and the SET is recorded as abandoned. The stream
//! records how far its receiver had everything once per batch, so the
//! log holds the proof of notification without doubling. A restart goes
//! on from the last recorded offset: a SET delivered but not yet recorded
//! is sent again, identical, and the receiver drops it by its `jti`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use writ_domain::ssf_stream::{
    Delivery, SsfStream, SsfStreamCommand, SsfStreamEvent, StreamStatus,
};
use writ_infra::keys::KeyRing;
use writ_infra::signing::KeySet;
use writ_infra::{outbound, ssf};
use writ_store::metrics::Source;
use writ_store::views::clients;
use writ_store::{Cursor, Executor, Metadata, Store};

use crate::leadership::Leadership;

const PUSHER_LOCK: i64 = 0x0057_5249_5453_5346; // "WRITSSF"
const EVENTS_PER_READ: i64 = 1_000;
/// The least time between two turns woken by commits.
const WAKE_GAP: Duration = Duration::from_millis(5);
/// With nothing committed, how often retries that fell due are sent.
const IDLE: Duration = Duration::from_millis(250);
/// A receiver disabled, or whose credentials do not open, is looked at
/// again after this.
const REST: chrono::Duration = chrono::Duration::seconds(5);
/// How often poll streams' lag is measured for `/metrics`.
const POLL_LAG_EVERY: Duration = Duration::from_secs(5);
/// Signal events read per stream per turn.
const SIGNALS_PER_TURN: i64 = 200;
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// A 5xx is tried again within this (the issue's, and CAEP's, promise).
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// How long one SET is tried before it is abandoned.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub stream_id: String,
}

#[derive(Debug, Default)]
pub struct SsfMetrics {
    pub delivered: Family<StreamLabel, Counter>,
    pub failed_attempts: Family<StreamLabel, Counter>,
    pub abandoned: Family<StreamLabel, Counter>,
    /// Signals in the log after the last one delivered, at the last turn.
    pub lag_events: Family<StreamLabel, Gauge>,
    /// Seconds since the oldest undelivered signal was committed.
    pub lag_seconds: Family<StreamLabel, Gauge>,
}

impl SsfMetrics {
    /// A deleted stream's series go, so it does not show its last lag.
    fn forget(&self, stream_id: &str) {
        let label = StreamLabel {
            stream_id: stream_id.to_owned(),
        };
        self.delivered.remove(&label);
        self.failed_attempts.remove(&label);
        self.abandoned.remove(&label);
        self.lag_events.remove(&label);
        self.lag_seconds.remove(&label);
    }
}

impl Source for SsfMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "writ_ssf_push_delivered",
            "SETs a push receiver accepted with a 202",
            self.delivered.clone(),
        );
        registry.register(
            "writ_ssf_push_failed_attempts",
            "SET deliveries that failed and will be retried or abandoned",
            self.failed_attempts.clone(),
        );
        registry.register(
            "writ_ssf_push_abandoned",
            "SETs given up on after their retry window",
            self.abandoned.clone(),
        );
        registry.register(
            "writ_ssf_lag_events",
            "SETs of the stream not yet delivered (push) or acknowledged (poll)",
            self.lag_events.clone(),
        );
        registry.register(
            "writ_ssf_lag_seconds",
            "age of the stream's oldest SET not yet delivered (push) or acknowledged (poll)",
            self.lag_seconds.clone(),
        );
    }
}

/// Where a stream's walk through the log stands in this process.
#[derive(Debug, Clone, Default)]
struct Walk {
    /// Every signal up to here was delivered, abandoned or not the
    /// stream's; ahead of the recorded offset between records.
    done_to: Cursor,
    failing: Option<Failing>,
}

#[derive(Debug, Clone)]
struct Failing {
    position: Cursor,
    attempts: u32,
    since: DateTime<Utc>,
    due: DateTime<Utc>,
}

pub struct Pusher {
    store: Store,
    executor: Executor,
    keys: KeySet,
    key_ring: KeyRing,
    issuer: String,
    retry_for: Duration,
    metrics: Arc<SsfMetrics>,
}

impl Pusher {
    pub fn new(
        store: Store,
        executor: Executor,
        keys: KeySet,
        key_ring: KeyRing,
        issuer: String,
        retry_for: Duration,
    ) -> Self {
        Self {
            store,
            executor,
            keys,
            key_ring,
            issuer,
            retry_for,
            metrics: Arc::default(),
        }
    }

    pub fn metrics(&self) -> Arc<SsfMetrics> {
        self.metrics.clone()
    }

    fn now(&self) -> DateTime<Utc> {
        self.executor.services().now()
    }

    pub async fn run_until_stopped(self, mut stopped: watch::Receiver<bool>, tick: Duration) {
        let this = Arc::new(self);
        let (mut read_to, mut streams) = loop {
            match this.load_streams().await {
                Ok(loaded) => break loaded,
                Err(err) => {
                    tracing::warn!(error = %err, "Shared Signals cannot load its streams; trying again");
                    tokio::select! {
                        _ = stopped.wait_for(|stopped| *stopped) => return,
                        _ = tokio::time::sleep(IDLE) => {}
                    }
                }
            }
        };
        let mut walks: HashMap<String, Walk> = HashMap::new();
        let mut busy: HashMap<String, ()> = HashMap::new();
        let (done, mut finished) = mpsc::unbounded_channel::<(String, Walk)>();
        let mut leadership = Leadership::new(PUSHER_LOCK, "Shared Signals pushes");
        let mut wakeups = crate::run::Wakeups::of_kinds(&this.store, tick, ssf::PUSH_WAKERS).await;
        let mut last_turn = std::time::Instant::now();
        let mut last_poll_lag: Option<std::time::Instant> = None;
        let mut missed: std::collections::HashSet<String> = std::collections::HashSet::new();
        loop {
            while let Ok((id, walk)) = finished.try_recv() {
                busy.remove(&id);
                walks.insert(id, walk);
            }
            if *stopped.borrow() {
                return;
            }
            match this.read_streams(read_to, &mut streams).await {
                Ok(cursor) => read_to = cursor,
                Err(err) => tracing::warn!(error = %err, "Shared Signals cannot read its streams"),
            }
            for (id, _) in streams.iter().filter(|(_, s)| s.deleted) {
                this.metrics.forget(id);
            }
            streams.retain(|_, stream| !stream.deleted && stream.config.is_some());
            walks.retain(|id, _| streams.contains_key(id));
            if last_poll_lag.is_none_or(|at| at.elapsed() >= POLL_LAG_EVERY) {
                last_poll_lag = Some(std::time::Instant::now());
                this.measure_poll_lag(&streams).await;
            }
            if leadership.lead(&this.store).await {
                for (id, stream) in &streams {
                    if !stream.is_push()
                        || stream.deleted
                        || stream.status != StreamStatus::Enabled
                        || busy.contains_key(id)
                    {
                        continue;
                    }
                    let recorded: Cursor = stream.delivered_up_to.parse().unwrap_or_default();
                    let mut walk = walks.get(id).cloned().unwrap_or_default();
                    if walk.done_to < recorded {
                        walk = Walk {
                            done_to: recorded,
                            failing: None,
                        };
                    }
                    if walk.failing.as_ref().is_some_and(|f| f.due > this.now()) {
                        continue;
                    }
                    busy.insert(id.clone(), ());
                    let (this, done) = (this.clone(), done.clone());
                    let (id, stream) = (id.clone(), stream.clone());
                    tokio::spawn(async move {
                        let walk = this.turn(&id, &stream, walk).await;
                        let _ = done.send((id, walk));
                    });
                }
            }
            // A commit (this process's, or another's) wakes the pusher at
            // once, at most every `WAKE_GAP` so a busy log does not keep it
            // reading; the tick paces retries when nothing commits.
            let pushing = streams
                .values()
                .any(|s| s.status == StreamStatus::Enabled && s.is_push());
            let since = last_turn.elapsed();
            if since < WAKE_GAP {
                tokio::time::sleep(WAKE_GAP - since).await;
            }
            let idle = tokio::time::sleep(IDLE);
            tokio::pin!(idle);
            loop {
                tokio::select! {
                    _ = stopped.wait_for(|stopped| *stopped) => return,
                    _ = &mut idle => break,
                    _ = wakeups.next(), if pushing => {
                        // A stream mid-turn may have read the log before
                        // this commit: it turns again when it is done.
                        missed.extend(busy.keys().cloned());
                        break;
                    }
                    Some((id, walk)) = finished.recv() => {
                        busy.remove(&id);
                        walks.insert(id.clone(), walk);
                        if missed.remove(&id) {
                            break;
                        }
                    }
                }
            }
            last_turn = std::time::Instant::now();
        }
    }

    /// Poll streams' lag, for `/metrics`: the SETs not yet acknowledged
    /// (counted up to a page of the log) and the age of the oldest. Every
    /// process measures; the numbers are the log's, so they agree.
    async fn measure_poll_lag(&self, streams: &HashMap<String, SsfStream>) {
        let now = self.now().timestamp();
        for (id, stream) in streams {
            if !stream.is_poll() || stream.status != StreamStatus::Enabled {
                continue;
            }
            let floor: Cursor = stream.acked_floor.parse().unwrap_or_default();
            let Ok((signals, _)) =
                ssf::signals_after(&self.store, &self.issuer, floor, EVENTS_PER_READ).await
            else {
                continue;
            };
            let waiting: Vec<&ssf::Signal> = signals
                .iter()
                .filter(|s| s.awaits_ack(id, stream))
                .collect();
            let label = StreamLabel {
                stream_id: id.clone(),
            };
            let oldest = waiting
                .first()
                .map_or(0, |s| (now - s.committed_at()).max(0));
            self.metrics
                .lag_events
                .get_or_create(&label)
                .set(waiting.len() as i64);
            self.metrics.lag_seconds.get_or_create(&label).set(oldest);
        }
    }

    /// Every stream as it stands, each loaded from its snapshot, and the
    /// log's head read first: what follows is read from there on. A
    /// stream's events committed between the two are applied twice, which
    /// its `apply` allows (every arm is idempotent). Start-up reads the
    /// streams' creations and at most a snapshot interval of events each,
    /// not every batch ever told.
    async fn load_streams(&self) -> Result<(Cursor, HashMap<String, SsfStream>), String> {
        let head = self
            .store
            .readable_head()
            .await
            .map_err(|e| e.to_string())?;
        let mut streams = HashMap::new();
        let mut after = writ_store::START;
        loop {
            let (created, reached) = self
                .store
                .events_of_kinds_after(after, &["SsfStreamCreated"], EVENTS_PER_READ)
                .await
                .map_err(|e| e.to_string())?;
            for event in &created {
                let stream = self.executor.load::<SsfStream>(&event.aggregate_id).await?;
                if !stream.deleted {
                    streams.insert(event.aggregate_id.clone(), stream);
                }
            }
            if (created.len() as i64) < EVENTS_PER_READ || reached == after {
                return Ok((head, streams));
            }
            after = reached;
        }
    }

    async fn read_streams(
        &self,
        mut after: Cursor,
        streams: &mut HashMap<String, SsfStream>,
    ) -> Result<Cursor, sqlx::Error> {
        loop {
            let (events, reached) = self
                .store
                .events_of_type_after(after, SsfStream::TYPE, EVENTS_PER_READ)
                .await?;
            for event in &events {
                if let Ok(payload) = serde_json::from_value::<SsfStreamEvent>(event.payload.clone())
                {
                    streams
                        .entry(event.aggregate_id.clone())
                        .or_default()
                        .apply(payload);
                }
            }
            let more = reached != after && events.len() as i64 == EVENTS_PER_READ;
            after = reached;
            if !more {
                return Ok(after);
            }
        }
    }

    /// One turn of a stream: deliver what is due, in order, stopping at
    /// the first SET its receiver does not accept.
    async fn turn(&self, id: &str, stream: &SsfStream, mut walk: Walk) -> Walk {
        let label = StreamLabel {
            stream_id: id.to_owned(),
        };
        let (signals, reached) =
            match ssf::signals_after(&self.store, &self.issuer, walk.done_to, SIGNALS_PER_TURN)
                .await
            {
                Ok(read) => read,
                Err(err) => {
                    tracing::warn!(error = %err, "Shared Signals cannot read the log");
                    return walk;
                }
            };
        let Some(Delivery::Push {
            endpoint_url,
            authorization_header,
        }) = stream.config.as_ref().map(|c| c.delivery.clone())
        else {
            return walk;
        };
        // A receiver disabled, or no longer holding `ssf.manage`, is told
        // nothing more; its stream waits where it is.
        match clients::active_settings(self.store.db(), &stream.receiver).await {
            Ok(Some(settings)) if settings.scopes.contains(ssf::SCOPE) => {}
            Ok(_) => return self.rest(walk),
            Err(err) => {
                tracing::warn!(error = %err, "Shared Signals cannot read its receiver");
                return walk;
            }
        }
        let authorization = match &authorization_header {
            None => None,
            Some(sealed) => match ssf::open_authorization(&self.key_ring, id, sealed) {
                Some(value) => Some(value),
                // Never sent without the receiver's credentials.
                None => {
                    tracing::warn!(stream_id = %id, "a push stream's Authorization value does not open");
                    return self.rest(walk);
                }
            },
        };
        let mine: Vec<&ssf::Signal> = signals.iter().filter(|s| s.is_for(id, stream)).collect();
        self.metrics
            .lag_events
            .get_or_create(&label)
            .set(mine.len() as i64);
        let (mut delivered, mut last_delivered) = (0u32, None);
        let mut stopped_early = false;
        for signal in mine {
            let Some(set) = signal.sign(&self.keys, &self.issuer, id, &stream.receiver) else {
                tracing::warn!("no RS256 key is active: Shared Signals cannot sign");
                stopped_early = true;
                break;
            };
            let outcome = outbound::post_set(&endpoint_url, authorization.as_deref(), set).await;
            if outcome == Ok(202) {
                self.metrics.delivered.get_or_create(&label).inc();
                delivered += 1;
                last_delivered = Some(signal.position);
                walk.done_to = signal.position;
                walk.failing = None;
                continue;
            }
            let reason = match outcome {
                Ok(status) => format!("HTTP {status}"),
                Err(why) => why,
            };
            self.metrics.failed_attempts.get_or_create(&label).inc();
            let now = self.now();
            let failing = match walk.failing.take() {
                Some(f) if f.position == signal.position => f,
                _ => Failing {
                    position: signal.position,
                    attempts: 0,
                    since: now,
                    due: now,
                },
            };
            let attempts = failing.attempts + 1;
            let window = chrono::Duration::from_std(self.retry_for).unwrap_or_default();
            if now - failing.since >= window && self.abandon(id, signal, attempts, reason).await {
                self.metrics.abandoned.get_or_create(&label).inc();
                walk.done_to = signal.position;
                continue;
            }
            walk.failing = Some(Failing {
                attempts,
                due: now + backoff(attempts),
                ..failing
            });
            stopped_early = true;
            break;
        }
        if let Some(up_to) = last_delivered {
            let command = SsfStreamCommand::RecordDelivered {
                up_to: up_to.to_string(),
                count: delivered,
            };
            if let Err(err) = self
                .executor
                .execute::<SsfStream>(id, command, &metadata(id))
                .await
            {
                tracing::warn!(error = %err, "a Shared Signals delivery was not recorded");
            }
        }
        if !stopped_early {
            walk.done_to = walk.done_to.max(reached);
            self.metrics.lag_seconds.get_or_create(&label).set(0);
        } else if let Some(failing) = &walk.failing {
            let age = (self.now() - failing.since).num_seconds();
            self.metrics.lag_seconds.get_or_create(&label).set(age);
        }
        walk
    }

    /// The walk, not to be taken up again for a while.
    fn rest(&self, walk: Walk) -> Walk {
        let now = self.now();
        Walk {
            failing: Some(Failing {
                position: walk.done_to,
                attempts: 0,
                since: now,
                due: now + REST,
            }),
            ..walk
        }
    }

    async fn abandon(&self, id: &str, signal: &ssf::Signal, attempts: u32, reason: String) -> bool {
        let command = SsfStreamCommand::Abandon {
            position: signal.position.to_string(),
            jti: ssf::jti(id, signal.position),
            attempts,
            reason,
        };
        match self
            .executor
            .execute::<SsfStream>(id, command, &metadata(id))
            .await
        {
            Ok(_) => {
                tracing::warn!(stream_id = %id, "a SET was abandoned after its retry window");
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, "an abandoned SET was not recorded");
                false
            }
        }
    }
}

fn metadata(id: &str) -> Metadata {
    Metadata {
        actor: "ssf".into(),
        request_id: format!("ssf:{id}"),
        client_id: None,
        client_auth: None,
    }
}

/// The wait after the `attempt`th failure: 1 s, doubling, at most 30 s.
fn backoff(attempt: u32) -> chrono::Duration {
    crate::backchannel::doubling(attempt, FIRST_WAIT, LONGEST_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_but_never_past_thirty_seconds() {
        assert_eq!(backoff(1).num_seconds(), 1);
        assert_eq!(backoff(3).num_seconds(), 4);
        assert_eq!(backoff(6).num_seconds(), 30);
        assert_eq!(backoff(40).num_seconds(), 30);
    }
}
