//! Kafka, through rdkafka: the producer settings design.md requires (none
//! of them librdkafka's defaults), the topic Writ creates, and the
//! retention check at start. Any other librdkafka property (TLS, SASL, …)
//! passes through from configuration.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

pub const DEFAULT_TOPIC: &str = "writ.revocations";
/// A week: far longer than any access token, so a resource server that
/// starts late still reads every revocation of a token alive.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    pub topic: String,
    pub partitions: i32,
    /// The replication factor of a created topic; -1 is the broker's default.
    pub replication: i32,
    pub retention: Duration,
    /// librdkafka properties set as given (`security.protocol`, `sasl.*`, …).
    pub properties: Vec<(String, String)>,
}

impl std::fmt::Debug for KafkaSettings {
    /// Property values may be SASL passwords: only their keys are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self
            .properties
            .iter()
            .map(|(key, _)| key.as_str())
            .collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("retention", &self.retention)
            .field("properties", &keys)
            .finish()
    }
}

impl KafkaSettings {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: DEFAULT_TOPIC.to_owned(),
            partitions: 3,
            replication: -1,
            retention: DEFAULT_RETENTION,
            properties: Vec::new(),
        }
    }

    /// A client configuration with the brokers and the pass-through
    /// properties, for producers, consumers and admin clients alike.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// The outbox producer: idempotent (no duplicates or reordering from
    /// its own retries), every in-sync replica acknowledging, and a small
    /// linger so a revocation leaves within about a millisecond. Set after
    /// the pass-through properties, so configuration cannot weaken them. A
    /// send that is not acknowledged in 10 s fails and the publisher sends
    /// again from its checkpoint.
    pub fn producer(&self) -> Result<FutureProducer, KafkaError> {
        let mut config = self.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", "10000");
        config.create()
    }

    fn admin(&self) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
        self.client_config().create()
    }

    /// Creates the topic when missing, with explicit retention and
    /// `cleanup.policy=delete`: compaction would keep only a key's latest
    /// revocation and drop the ones before it.
    pub async fn ensure_topic(&self) -> Result<(), KafkaError> {
        let retention = self.retention.as_millis().to_string();
        let topic = NewTopic::new(
            &self.topic,
            self.partitions,
            TopicReplication::Fixed(self.replication),
        )
        .set("retention.ms", &retention)
        .set("cleanup.policy", "delete");
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in self.admin()?.create_topics([&topic], &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                        tracing::warn!(topic = %name, error = %code, "cannot create the revocation topic")
                    })
                }
            }
        }
        Ok(())
    }

    /// Why the topic's retention could lose revocations of tokens still
    /// alive, if it could: unknown, compacted, or shorter than the
    /// longest access-token lifetime.
    pub async fn retention_problem(&self, longest_token: Duration) -> Option<String> {
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let described = match self.admin() {
            Ok(admin) => {
                admin
                    .describe_configs([&ResourceSpecifier::Topic(&self.topic)], &options)
                    .await
            }
            Err(err) => Err(err),
        };
        let resource = match described.map(|mut all| all.pop()) {
            Ok(Some(Ok(resource))) => resource,
            Ok(Some(Err(code))) => return Some(format!("its configuration is unknown ({code})")),
            Ok(None) => return Some("its configuration is unknown".to_owned()),
            Err(err) => return Some(format!("its configuration is unknown ({err})")),
        };
        let value = |name: &str| resource.get(name).and_then(|entry| entry.value.clone());
        retention_verdict(
            value("cleanup.policy").as_deref(),
            value("retention.ms").as_deref(),
            longest_token,
        )
    }
}

/// The verdict on a topic's `cleanup.policy` and `retention.ms`.
pub fn retention_verdict(
    cleanup_policy: Option<&str>,
    retention_ms: Option<&str>,
    longest_token: Duration,
) -> Option<String> {
    if cleanup_policy.is_some_and(|policy| policy.contains("compact")) {
        return Some(
            "it is compacted (cleanup.policy=compact keeps only a key's latest revocation)"
                .to_owned(),
        );
    }
    let Some(retention) = retention_ms.and_then(|ms| ms.parse::<i64>().ok()) else {
        return Some("its retention is unknown".to_owned());
    };
    if retention < 0 {
        return None;
    }
    let longest = longest_token.as_millis() as i64;
    (retention < longest).then(|| {
        format!("its retention.ms {retention} is shorter than the longest access-token lifetime ({longest} ms)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_judged_against_the_longest_token() {
        let hour = Duration::from_secs(3600);
        assert_eq!(
            retention_verdict(Some("delete"), Some("7200000"), hour),
            None
        );
        assert_eq!(retention_verdict(Some("delete"), Some("-1"), hour), None);
        assert!(retention_verdict(Some("delete"), Some("60000"), hour)
            .is_some_and(|why| why.contains("shorter")));
        assert!(
            retention_verdict(Some("compact,delete"), Some("7200000"), hour)
                .is_some_and(|why| why.contains("compacted"))
        );
        assert!(retention_verdict(Some("delete"), None, hour)
            .is_some_and(|why| why.contains("unknown")));
    }
}
