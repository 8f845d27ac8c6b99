//! Feeding the deny-list from Writ's Kafka topic. Every partition is read
//! from its earliest retained message on start (the deny-list lives in
//! memory, so a restarted server must see every revocation of a token
//! still alive), offsets are stored only after the deny-list is updated,
//! and the server reports ready once it has read what the topic held when
//! it started.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::verify::ResourceServer;

const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Where Writ publishes revocations: the brokers with any TLS or SASL
/// properties the cluster needs, and the topic.
#[derive(Clone)]
pub struct KafkaSource {
    pub client: ClientConfig,
    pub topic: String,
}

impl KafkaSource {
    pub fn new(brokers: &str, topic: impl Into<String>) -> Self {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", brokers);
        Self {
            client,
            topic: topic.into(),
        }
    }
}

impl std::fmt::Debug for KafkaSource {
    /// Properties may hold SASL passwords: only the topic is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// The consumer: low fetch wait so a revocation arrives in milliseconds.
pub fn consumer(kafka: &KafkaSource, group: &str) -> Result<StreamConsumer, KafkaError> {
    let mut config = kafka.client.clone();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "5")
        .set("fetch.min.bytes", "1");
    config.create()
}

/// Follows the topic until the task is dropped, retrying after errors.
pub async fn follow_kafka(server: ResourceServer, kafka: KafkaSource, group: String) {
    loop {
        if let Err(err) = follow_once(&server, &kafka, &group).await {
            tracing::warn!(error = %err, topic = %kafka.topic, "revocation feed interrupted; reconnecting");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn follow_once(
    server: &ResourceServer,
    kafka: &KafkaSource,
    group: &str,
) -> Result<(), KafkaError> {
    let consumer = consumer(kafka, group)?;
    let topic = kafka.topic.clone();
    // The partitions and how far each reached when we started; librdkafka's
    // metadata calls block, so they run off the async threads.
    let (consumer, targets) = tokio::task::spawn_blocking(move || {
        let metadata = consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
        let mut assignment = TopicPartitionList::new();
        let mut targets = HashMap::new();
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, METADATA_TIMEOUT)?;
            if high > low {
                targets.insert(partition, high);
            }
            assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        Ok((consumer, targets))
    })
    .await
    .map_err(|_| KafkaError::Canceled)??;
    let mut waiting = targets;
    if waiting.is_empty() {
        server.mark_ready();
    }
    loop {
        let message = consumer.recv().await?;
        match message
            .payload()
            .map(|payload| server.apply_payload(payload))
        {
            Some(Ok(())) => {}
            Some(Err(err)) => {
                tracing::warn!(error = %err, offset = message.offset(), "a message on the revocation topic is not a revocation; skipped")
            }
            None => {}
        }
        consumer.store_offset_from_message(&message)?;
        if !waiting.is_empty() {
            let partition = message.partition();
            if waiting
                .get(&partition)
                .is_some_and(|high| message.offset() + 1 >= *high)
            {
                waiting.remove(&partition);
            }
            if waiting.is_empty() {
                server.mark_ready();
            }
        }
    }
}
