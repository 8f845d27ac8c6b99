//! The revocation publisher: the events table is the outbox. It follows
//! the log from its own checkpoint, sends one message per revocation to
//! Kafka and moves the checkpoint only once the broker has acknowledged
//! every message of the slice, so nothing committed is lost and nothing
//! uncommitted is sent. A broker outage delays delivery; the slice is sent
//! again (consumers apply duplicates harmlessly) and order per key holds,
//! since a slice goes out in log order after the one before it was
//! acknowledged.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;
use writ_infra::kafka::KafkaSettings;
use writ_infra::revocations;
use writ_store::metrics::Source;
use writ_store::{Conn, Cursor, Dialect, Store};

use crate::{advance_checkpoint_alone, read_checkpoint, ProjectorError};

pub const CHECKPOINT: &str = "revocations";
/// The session-level advisory lock whose holder is the active publisher.
const PUBLISHER_LOCK: i64 = 0x0057_5249_5450_5542; // "WRITPUB"
const SLICE: i64 = 1000;
/// How long to wait before sending an unacknowledged slice again.
const RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct PublisherMetrics {
    /// A gauge, as it always was: a counter would be renamed `_total`.
    pub published: Gauge,
    /// Age of the oldest revocation committed and not yet acknowledged.
    pub oldest_unpublished_seconds: Gauge<f64, AtomicU64>,
    pub active: Gauge,
}

impl Source for PublisherMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "writ_revocations_published",
            "revocation messages the broker acknowledged since start",
            self.published.clone(),
        );
        registry.register(
            "writ_revocations_oldest_unpublished_seconds",
            "age of the oldest committed revocation the broker has not acknowledged",
            self.oldest_unpublished_seconds.clone(),
        );
        registry.register(
            "writ_revocation_publisher_active",
            "1 when this process is the active revocation publisher",
            self.active.clone(),
        );
    }
}

pub struct Publisher {
    store: Store,
    conn: Conn,
    producer: FutureProducer,
    kafka: KafkaSettings,
    topic: String,
    check_interval: Duration,
    metrics: Arc<PublisherMetrics>,
    leading: bool,
}

impl Publisher {
    pub async fn new(
        store: Store,
        kafka: &KafkaSettings,
        check_interval: Duration,
    ) -> Result<Self, ProjectorError> {
        let producer = kafka
            .producer()
            .map_err(|err| ProjectorError::Kafka(err.to_string()))?;
        Ok(Self {
            conn: crate::connect_projection(store.target()).await?,
            store,
            producer,
            kafka: kafka.clone(),
            topic: kafka.topic.clone(),
            check_interval,
            metrics: Arc::default(),
            leading: false,
        })
    }

    pub fn metrics(&self) -> Arc<PublisherMetrics> {
        self.metrics.clone()
    }

    pub async fn checkpoint(&mut self) -> Result<Cursor, ProjectorError> {
        read_checkpoint(&mut self.conn, CHECKPOINT).await
    }

    /// Sends the revocations of the next slice and moves the checkpoint
    /// past it; the number of events passed, 0 when caught up.
    pub async fn publish_next(&mut self) -> Result<usize, ProjectorError> {
        let from = self.checkpoint().await?;
        let headers = self.store.headers_after(from, SLICE).await?;
        let Some(last) = headers.last().map(|header| header.cursor()) else {
            self.metrics.oldest_unpublished_seconds.set(0.0);
            return Ok(0);
        };
        let messages = revocations::messages_for(&self.store, &headers).await?;
        if let Some(oldest) = messages.first() {
            let age = (chrono::Utc::now() - oldest.revoked_at)
                .num_microseconds()
                .unwrap_or(0);
            self.metrics
                .oldest_unpublished_seconds
                .set(age.max(0) as f64 / 1e6);
        }
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in &messages {
            let payload = serde_json::to_vec(message)
                .map_err(|err| ProjectorError::Kafka(err.to_string()))?;
            let record = FutureRecord::to(&self.topic)
                .key(message.key())
                .payload(&payload);
            let delivery = self
                .producer
                .send_result(record)
                .map_err(|(err, _)| ProjectorError::Kafka(err.to_string()))?;
            deliveries.push(delivery);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((err, _))) => return Err(ProjectorError::Kafka(err.to_string())),
                Err(_) => return Err(ProjectorError::Kafka("delivery cancelled".into())),
            }
        }
        advance_checkpoint_alone(&self.store, &mut self.conn, CHECKPOINT, from, last).await?;
        self.metrics.published.inc_by(messages.len() as i64);
        Ok(headers.len())
    }

    /// A fresh producer after a failed slice. An idempotent producer whose
    /// sends timed out may be left fenced for good (librdkafka calls it a
    /// fatal error: the instance must be replaced); the slice is sent again
    /// from the checkpoint either way.
    async fn renew_producer(&mut self) {
        match self.kafka.producer() {
            Ok(fresh) => {
                let stale = std::mem::replace(&mut self.producer, fresh);
                // Dropping purges and waits for librdkafka's threads.
                let _ = tokio::task::spawn_blocking(move || drop(stale)).await;
            }
            Err(err) => tracing::warn!(error = %err, "cannot create a Kafka producer; retrying"),
        }
    }

    async fn lead(&mut self) -> Result<bool, ProjectorError> {
        if self.conn.dialect() == Dialect::Sqlite || self.leading {
            return Ok(true);
        }
        self.leading = crate::run::try_lock(&mut self.conn, PUBLISHER_LOCK).await?;
        if self.leading {
            self.metrics.active.set(1);
            tracing::info!("this process is now the active revocation publisher");
        }
        Ok(self.leading)
    }

    async fn reconnect(&mut self) {
        self.leading = false;
        self.metrics.active.set(0);
        match crate::connect_projection(self.store.target()).await {
            Ok(conn) => self.conn = conn,
            Err(err) => tracing::warn!(error = %err, "publisher cannot reconnect; retrying"),
        }
    }

    /// Publishes until caught up, then waits for a commit; stops when
    /// `shutdown` fires. Errors (broker or database) are retried.
    pub async fn run_until_stopped(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut wakeups = crate::run::Wakeups::new(&self.store, self.check_interval).await;
        loop {
            let pause = match self.lead().await {
                Ok(false) => Some(crate::run::STANDBY_POLL),
                Err(err) => {
                    tracing::warn!(error = %err, "publisher lost its connection; reconnecting");
                    self.reconnect().await;
                    Some(crate::run::STANDBY_POLL)
                }
                Ok(true) => match self.publish_next().await {
                    Ok(0) => None,
                    Ok(_) => continue,
                    Err(ProjectorError::Sql(err)) => {
                        tracing::warn!(error = %err, "publisher storage error; reconnecting");
                        self.reconnect().await;
                        Some(RETRY)
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "revocations not acknowledged; sending again");
                        self.renew_producer().await;
                        Some(RETRY)
                    }
                },
            };
            match pause {
                Some(pause) => tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = tokio::time::sleep(pause) => {}
                },
                None => tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = wakeups.next() => {}
                },
            }
        }
        // What was sent is delivered or abandoned; either way the
        // checkpoint says what to send next.
        let _ = tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            self.producer.flush(Duration::from_secs(5))
        })
        .await;
    }
}
