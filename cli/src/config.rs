//! Settings. Precedence: command-line flags > `WRIT_*` environment
//! variables > the `--config` file > defaults. Flags and environment are
//! merged by the CLI parser into [`Overrides`]; the file is TOML with the
//! same keys (snake_case); durations use humantime syntax (`5s`, `10m`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::telemetry::LogFormat;
use writ_infra::keys::default_key_file;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub issuer: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub key_file: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    #[serde(default, with = "humantime_serde")]
    pub access_token_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub refresh_token_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub projector_check_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub checkpoint_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub refresh_token_idle_ttl: Option<Duration>,
    pub signing_alg: Option<SigningAlg>,
    pub auth_failure_limit: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub auth_failure_window: Option<Duration>,
    pub registration_token: Option<String>,
    pub audit_token: Option<String>,
    pub ip_failure_limit: Option<u32>,
    pub trusted_proxies: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde")]
    pub header_read_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub body_read_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub code_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub session_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub authorization_request_ttl: Option<Duration>,
    pub public_command_url: Option<String>,
    pub public_query_url: Option<String>,
    pub revocation_feed_streams: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub revocation_feed_poll: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub revocation_feed_recheck: Option<Duration>,
    pub kafka_brokers: Option<String>,
    pub kafka_topic: Option<String>,
    pub kafka_partitions: Option<i32>,
    pub kafka_replication: Option<i32>,
    #[serde(default, with = "humantime_serde")]
    pub kafka_retention: Option<Duration>,
    pub kafka_properties: Option<std::collections::BTreeMap<String, String>>,
}

/// Signature algorithms for access tokens (design: ES256 or EdDSA, never
/// RS256 on the hot path).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum SigningAlg {
    #[default]
    ES256,
    EdDSA,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::ES256, Self::EdDSA]
            .into_iter()
            .find(|alg| alg.as_str() == raw)
    }
}

/// What flags and environment set; `None` falls through to the file.
pub type Overrides = FileConfig;

#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub issuer: String,
    pub data_dir: PathBuf,
    /// PostgreSQL instead of the embedded SQLite database under `data_dir`.
    pub database_url: Option<String>,
    pub key_file: PathBuf,
    pub log_format: LogFormat,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub projector_check_interval: Duration,
    /// How often the projector seals the log (signed checkpoints).
    pub checkpoint_interval: Duration,
    pub refresh_token_idle_ttl: Duration,
    pub signing_alg: SigningAlg,
    pub auth_failure_limit: u32,
    pub auth_failure_window: Duration,
    /// Never logged: `Debug` shows only whether it is set.
    pub registration_token: Option<String>,
    pub audit_token: Option<String>,
    pub ip_failure_limit: u32,
    /// Parsed when the server starts (`TrustedProxies::parse`).
    pub trusted_proxies: Vec<String>,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub code_ttl: Duration,
    pub session_ttl: Duration,
    pub authorization_request_ttl: Duration,
    /// Whether `issuer` was given, not derived from `listen`: the split
    /// processes must agree on it, so they require it.
    pub issuer_given: bool,
    pub public_command_url: String,
    pub public_query_url: String,
    /// Open revocation-feed streams per client, per process.
    pub revocation_feed_streams: u32,
    /// The feed's shared reader's look for other processes' commits.
    pub revocation_feed_poll: Duration,
    /// The longest an idle feed stream goes without checking its client.
    pub revocation_feed_recheck: Duration,
    /// Set when revocations go to Kafka.
    pub kafka: Option<writ_infra::kafka::KafkaSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} cannot be read: {1}")]
    Unreadable(String, String),
    #[error("config file {0} is invalid: {1}")]
    Invalid(String, String),
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database URL may carry a password: never print it.
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("issuer", &self.issuer)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_ref().map(|_| "(set)"))
            .field("key_file", &self.key_file)
            .field(
                "registration_token",
                &self.registration_token.as_ref().map(|_| "(set)"),
            )
            .field("audit_token", &self.audit_token.as_ref().map(|_| "(set)"))
            .finish_non_exhaustive()
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Unreadable(shown.clone(), e.to_string()))?;
        toml_from_str(&text).map_err(|e| ConfigError::Invalid(shown, e))
    }
}

fn toml_from_str(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.message().to_owned())
}

impl Settings {
    pub fn resolve(overrides: Overrides, file: FileConfig) -> Self {
        let kafka = kafka_settings(&overrides, &file);
        let listen = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = overrides
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("writ-data"));
        let issuer_given = overrides.issuer.is_some() || file.issuer.is_some();
        let issuer = overrides
            .issuer
            .or(file.issuer)
            .unwrap_or_else(|| format!("http://{listen}"));
        let public = |given: Option<String>| {
            given
                .filter(|url| !url.is_empty())
                .unwrap_or_else(|| issuer.clone())
        };
        Self {
            public_command_url: public(overrides.public_command_url.or(file.public_command_url)),
            public_query_url: public(overrides.public_query_url.or(file.public_query_url)),
            issuer_given,
            issuer,
            key_file: overrides
                .key_file
                .or(file.key_file)
                .unwrap_or_else(|| default_key_file(&data_dir)),
            log_format: overrides.log_format.or(file.log_format).unwrap_or_default(),
            access_token_ttl: overrides
                .access_token_ttl
                .or(file.access_token_ttl)
                .unwrap_or(Duration::from_secs(300)),
            refresh_token_ttl: overrides
                .refresh_token_ttl
                .or(file.refresh_token_ttl)
                .unwrap_or(Duration::from_secs(30 * 24 * 3600)),
            projector_check_interval: overrides
                .projector_check_interval
                .or(file.projector_check_interval)
                .unwrap_or(Duration::from_millis(200)),
            checkpoint_interval: overrides
                .checkpoint_interval
                .or(file.checkpoint_interval)
                .unwrap_or(Duration::from_secs(60)),
            refresh_token_idle_ttl: overrides
                .refresh_token_idle_ttl
                .or(file.refresh_token_idle_ttl)
                .unwrap_or(Duration::from_secs(14 * 24 * 3600)),
            signing_alg: overrides
                .signing_alg
                .or(file.signing_alg)
                .unwrap_or_default(),
            auth_failure_limit: overrides
                .auth_failure_limit
                .or(file.auth_failure_limit)
                .unwrap_or(10),
            auth_failure_window: overrides
                .auth_failure_window
                .or(file.auth_failure_window)
                .unwrap_or(Duration::from_secs(60)),
            audit_token: overrides.audit_token.or(file.audit_token),
            registration_token: overrides
                .registration_token
                .or(file.registration_token)
                .filter(|token| !token.is_empty()),
            ip_failure_limit: overrides
                .ip_failure_limit
                .or(file.ip_failure_limit)
                .unwrap_or(100),
            trusted_proxies: overrides
                .trusted_proxies
                .or(file.trusted_proxies)
                .unwrap_or_default(),
            header_read_timeout: overrides
                .header_read_timeout
                .or(file.header_read_timeout)
                .unwrap_or(Duration::from_secs(10)),
            body_read_timeout: overrides
                .body_read_timeout
                .or(file.body_read_timeout)
                .unwrap_or(Duration::from_secs(30)),
            max_connections: overrides
                .max_connections
                .or(file.max_connections)
                .unwrap_or(4096)
                .max(1),
            code_ttl: overrides
                .code_ttl
                .or(file.code_ttl)
                .unwrap_or(Duration::from_secs(60)),
            session_ttl: overrides
                .session_ttl
                .or(file.session_ttl)
                .unwrap_or(Duration::from_secs(12 * 3600)),
            authorization_request_ttl: overrides
                .authorization_request_ttl
                .or(file.authorization_request_ttl)
                .unwrap_or(Duration::from_secs(30 * 60)),
            revocation_feed_streams: overrides
                .revocation_feed_streams
                .or(file.revocation_feed_streams)
                .unwrap_or(4),
            revocation_feed_poll: overrides
                .revocation_feed_poll
                .or(file.revocation_feed_poll)
                .unwrap_or(Duration::from_millis(100)),
            revocation_feed_recheck: overrides
                .revocation_feed_recheck
                .or(file.revocation_feed_recheck)
                .unwrap_or(Duration::from_secs(10)),
            kafka,
            database_url: overrides.database_url.or(file.database_url),
            listen,
            data_dir,
        }
    }
}

/// Kafka from flags over the file; the file's properties first, so a
/// flag with the same key wins.
fn kafka_settings(
    overrides: &Overrides,
    file: &FileConfig,
) -> Option<writ_infra::kafka::KafkaSettings> {
    let brokers = overrides
        .kafka_brokers
        .clone()
        .or(file.kafka_brokers.clone())
        .filter(|brokers| !brokers.is_empty())?;
    let mut kafka = writ_infra::kafka::KafkaSettings::new(brokers);
    if let Some(topic) = overrides.kafka_topic.clone().or(file.kafka_topic.clone()) {
        kafka.topic = topic;
    }
    if let Some(partitions) = overrides.kafka_partitions.or(file.kafka_partitions) {
        kafka.partitions = partitions;
    }
    if let Some(replication) = overrides.kafka_replication.or(file.kafka_replication) {
        kafka.replication = replication;
    }
    if let Some(retention) = overrides.kafka_retention.or(file.kafka_retention) {
        kafka.retention = retention;
    }
    for properties in [&file.kafka_properties, &overrides.kafka_properties] {
        for (key, value) in properties.iter().flatten() {
            kafka.properties.retain(|(known, _)| known != key);
            kafka.properties.push((key.clone(), value.clone()));
        }
    }
    Some(kafka)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = toml_from_str(
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/writ\"\naccess_token_ttl = \"10m\"",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let overrides = Overrides {
            data_dir: Some("/override".into()),
            ..Default::default()
        };
        let settings = Settings::resolve(overrides, file);
        assert_eq!(settings.listen.port(), 9000);
        assert_eq!(settings.data_dir, PathBuf::from("/override"));
        assert_eq!(settings.key_file, PathBuf::from("/override/keys"));
        assert_eq!(settings.issuer, "http://127.0.0.1:9000");
        assert_eq!(settings.access_token_ttl, Duration::from_secs(600));
        assert_eq!(
            settings.refresh_token_ttl,
            Duration::from_secs(30 * 24 * 3600)
        );
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        assert!(toml_from_str("lisen = \"x\"").is_err());
    }
}
