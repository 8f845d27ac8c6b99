//! Settings. Precedence: command-line flags > `WRIT_*` environment
//! variables > the `--config` file > defaults. Flags and environment are
//! merged by the CLI parser into [`Overrides`], which figment layers over
//! the file; the file is TOML with the same keys (snake_case); durations
//! use humantime syntax (`5s`, `10m`). Defaults, some derived from other
//! settings (the issuer from `listen`, the key file from `data_dir`), are
//! filled in last. Secrets are `SecretString`s, which never print.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::telemetry::LogFormat;
use writ_infra::keys::default_key_file;

/// How long resource servers may cache a status list, and how long its
/// signature may be relied on (draft-ietf-oauth-status-list §13.7).
const DEFAULT_STATUS_LIST_TTL: Duration = Duration::from_secs(300);
const DEFAULT_STATUS_LIST_VALID_FOR: Duration = Duration::from_secs(24 * 3600);

/// One layer of settings: the file, or what flags and environment set.
/// Not `Debug`: it holds the tokens and the database URL in the clear.
#[derive(Clone, Default, Deserialize, Serialize)]
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
    pub max_in_flight: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub queue_wait: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub code_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub session_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub authorization_request_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub par_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub device_code_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub device_poll_interval: Option<Duration>,
    pub user_code_failure_limit: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub backchannel_logout_retry_for: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub ssf_retry_for: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub ssf_long_poll: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub status_list_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub status_list_valid_for: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub status_list_stale_after: Option<Duration>,
    pub allowed_resources: Option<Vec<String>>,
    pub require_pushed_authorization_requests: Option<bool>,
    pub fapi2_security_profile: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    pub dpop_proof_max_age: Option<Duration>,
    pub require_dpop_nonce: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    pub dpop_nonce_period: Option<Duration>,
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
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
    /// PostgreSQL instead of the embedded SQLite database under
    /// `data_dir`; its URL may carry a password.
    pub database_url: Option<SecretString>,
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
    pub registration_token: Option<SecretString>,
    pub audit_token: Option<SecretString>,
    pub ip_failure_limit: u32,
    /// Parsed when the server starts (`TrustedProxies::parse`).
    pub trusted_proxies: Vec<String>,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_in_flight: usize,
    pub queue_wait: Duration,
    pub code_ttl: Duration,
    pub session_ttl: Duration,
    pub authorization_request_ttl: Duration,
    /// How long a pushed authorization request's `request_uri` lives.
    pub par_ttl: Duration,
    /// RFC 8628: how long a device code and its user code live.
    pub device_code_ttl: Duration,
    /// RFC 8628 §3.2: the polling interval devices are given.
    pub device_poll_interval: Duration,
    /// User codes one address may try per `auth_failure_window` (§5.1).
    pub user_code_failure_limit: u32,
    /// How long a back-channel logout token is retried before giving up.
    pub backchannel_logout_retry_for: Duration,
    /// How long one SET is pushed to a failing receiver before giving up.
    pub ssf_retry_for: Duration,
    /// How long an RFC 8936 poll is held open waiting for a SET.
    pub ssf_long_poll: Duration,
    /// A token status list's `ttl` and `exp` (from its signing).
    pub status_list_ttl: Duration,
    pub status_list_valid_for: Duration,
    /// How far behind the projector may be before lists are refused.
    pub status_list_stale_after: Duration,
    /// RFC 8707 resources tokens may be for; empty, any absolute URI.
    pub allowed_resources: Vec<String>,
    /// Every client must push its authorization requests (RFC 9126 §5).
    pub require_pushed_authorization_requests: bool,
    /// Every client is held to FAPI 2.0 (docs/fapi2.md).
    pub fapi2_security_profile: bool,
    /// How old a DPoP proof's `iat` may be (RFC 9449 §11.1).
    pub dpop_proof_max_age: Duration,
    /// Every DPoP proof must carry a server nonce (RFC 9449 §8).
    pub require_dpop_nonce: bool,
    pub dpop_nonce_period: Duration,
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
    #[error("settings are invalid: {0}")]
    Layers(String),
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Kafka's properties may hold a SASL password: left out.
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("issuer", &self.issuer)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url)
            .field("key_file", &self.key_file)
            .field("registration_token", &self.registration_token)
            .field("audit_token", &self.audit_token)
            .finish_non_exhaustive()
    }
}

impl FileConfig {
    /// The `--config` file, if any, with `overrides` (flags and
    /// environment) over it, key by key; Kafka's properties merge key by
    /// key too.
    pub fn layered(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut layers = Figment::new();
        let mut shown = None;
        if let Some(path) = file {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Unreadable(name.clone(), e.to_string()))?;
            layers = layers.merge(Toml::string(&text));
            shown = Some(name);
        }
        let config: Self = layers
            .merge(Serialized::defaults(set_only(overrides)?))
            .extract()
            // Flags and environment arrive typed by the CLI parser, so a
            // value that does not fit came from the file.
            .map_err(|e| match shown {
                Some(name) => ConfigError::Invalid(name, one_line(e)),
                None => ConfigError::Layers(one_line(e)),
            })?;
        // RFC 9126 §2.2: a request_uri is meant to live seconds, and Writ
        // promises clients it lives under ten minutes.
        if config
            .par_ttl
            .is_some_and(|ttl| ttl < Duration::from_secs(1) || ttl >= Duration::from_secs(600))
        {
            return Err(ConfigError::Layers(
                "par_ttl must be at least 1s and under 10m".into(),
            ));
        }
        // A user code is guessable in proportion to how long it lives and
        // how many live at once (RFC 8628 §5.1).
        if config
            .device_code_ttl
            .is_some_and(|ttl| ttl < Duration::from_secs(1) || ttl > Duration::from_secs(3600))
        {
            return Err(ConfigError::Layers(
                "device_code_ttl must be between 1s and 1h".into(),
            ));
        }
        if config.ssf_retry_for.is_some_and(|window| {
            window < Duration::from_secs(1) || window > Duration::from_secs(7 * 24 * 3600)
        }) {
            return Err(ConfigError::Layers(
                "ssf_retry_for must be between 1s and 7d".into(),
            ));
        }
        if config
            .ssf_long_poll
            .is_some_and(|wait| wait < Duration::from_secs(1) || wait > Duration::from_secs(60))
        {
            return Err(ConfigError::Layers(
                "ssf_long_poll must be between 1s and 1m".into(),
            ));
        }
        let ttl = config.status_list_ttl.unwrap_or(DEFAULT_STATUS_LIST_TTL);
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::Layers(
                "status_list_ttl must be between 1s and 1d".into(),
            ));
        }
        let valid_for = config
            .status_list_valid_for
            .unwrap_or(DEFAULT_STATUS_LIST_VALID_FOR);
        if valid_for < ttl || valid_for > Duration::from_secs(30 * 24 * 3600) {
            return Err(ConfigError::Layers(
                "status_list_valid_for must be at least status_list_ttl and at most 30d".into(),
            ));
        }
        if config
            .status_list_stale_after
            .is_some_and(|lag| lag < Duration::from_secs(1) || lag > Duration::from_secs(3600))
        {
            return Err(ConfigError::Layers(
                "status_list_stale_after must be between 1s and 1h".into(),
            ));
        }
        if config.backchannel_logout_retry_for.is_some_and(|window| {
            window < Duration::from_secs(1) || window > Duration::from_secs(7 * 24 * 3600)
        }) {
            return Err(ConfigError::Layers(
                "backchannel_logout_retry_for must be between 1s and 7d".into(),
            ));
        }
        // Whole seconds: §3.2's `interval` is an integer.
        if config.device_poll_interval.is_some_and(|interval| {
            interval < Duration::from_secs(1)
                || interval > Duration::from_secs(60)
                || interval.subsec_nanos() != 0
        }) {
            return Err(ConfigError::Layers(
                "device_poll_interval must be whole seconds between 1s and 1m".into(),
            ));
        }
        // A proof older than this is refused; its jti is remembered that
        // long, so an unbounded age would be an unbounded replay window.
        if config
            .dpop_proof_max_age
            .is_some_and(|age| age < Duration::from_secs(1) || age > Duration::from_secs(600))
        {
            return Err(ConfigError::Layers(
                "dpop_proof_max_age must be between 1s and 10m".into(),
            ));
        }
        // A nonce is accepted for two periods; a long one is no nonce.
        if config.dpop_nonce_period.is_some_and(|period| {
            period < Duration::from_secs(1) || period > Duration::from_secs(3600)
        }) {
            return Err(ConfigError::Layers(
                "dpop_nonce_period must be between 1s and 1h".into(),
            ));
        }
        if let Some(bad) = config
            .allowed_resources
            .iter()
            .flatten()
            .find(|resource| writ_domain::values::ResourceUri::parse(resource).is_err())
        {
            return Err(ConfigError::Layers(format!(
                "allowed_resources: {bad:?} is not an absolute URI without a fragment"
            )));
        }
        Ok(config)
    }
}

/// The settings `overrides` sets: an unset flag must not hide the file's.
fn set_only(overrides: &Overrides) -> Result<serde_json::Value, ConfigError> {
    let mut value =
        serde_json::to_value(overrides).map_err(|e| ConfigError::Layers(e.to_string()))?;
    if let Some(members) = value.as_object_mut() {
        members.retain(|_, member| !member.is_null());
    }
    Ok(value)
}

fn one_line(error: figment::Error) -> String {
    error.to_string().replace('\n', " ")
}

fn secret(value: Option<String>) -> Option<SecretString> {
    value.map(SecretString::from)
}

impl Settings {
    pub fn resolve(layers: FileConfig) -> Self {
        let kafka = kafka_settings(&layers);
        let listen = layers
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = layers
            .data_dir
            .unwrap_or_else(|| PathBuf::from("writ-data"));
        let issuer_given = layers.issuer.is_some();
        let issuer = layers.issuer.unwrap_or_else(|| format!("http://{listen}"));
        let public = |given: Option<String>| {
            given
                .filter(|url| !url.is_empty())
                .unwrap_or_else(|| issuer.clone())
        };
        Self {
            public_command_url: public(layers.public_command_url),
            public_query_url: public(layers.public_query_url),
            issuer_given,
            issuer,
            key_file: layers
                .key_file
                .unwrap_or_else(|| default_key_file(&data_dir)),
            log_format: layers.log_format.unwrap_or_default(),
            access_token_ttl: layers.access_token_ttl.unwrap_or(Duration::from_secs(300)),
            refresh_token_ttl: layers
                .refresh_token_ttl
                .unwrap_or(Duration::from_secs(30 * 24 * 3600)),
            projector_check_interval: layers
                .projector_check_interval
                .unwrap_or(Duration::from_millis(200)),
            checkpoint_interval: layers
                .checkpoint_interval
                .unwrap_or(Duration::from_secs(60)),
            refresh_token_idle_ttl: layers
                .refresh_token_idle_ttl
                .unwrap_or(Duration::from_secs(14 * 24 * 3600)),
            signing_alg: layers.signing_alg.unwrap_or_default(),
            auth_failure_limit: layers.auth_failure_limit.unwrap_or(10),
            auth_failure_window: layers
                .auth_failure_window
                .unwrap_or(Duration::from_secs(60)),
            audit_token: secret(layers.audit_token),
            registration_token: secret(layers.registration_token.filter(|t| !t.is_empty())),
            ip_failure_limit: layers.ip_failure_limit.unwrap_or(100),
            trusted_proxies: layers.trusted_proxies.unwrap_or_default(),
            header_read_timeout: layers
                .header_read_timeout
                .unwrap_or(Duration::from_secs(10)),
            body_read_timeout: layers.body_read_timeout.unwrap_or(Duration::from_secs(30)),
            max_connections: layers.max_connections.unwrap_or(4096).max(1),
            max_in_flight: layers.max_in_flight.unwrap_or(128).max(1),
            queue_wait: layers.queue_wait.unwrap_or(Duration::from_millis(50)),
            code_ttl: layers.code_ttl.unwrap_or(Duration::from_secs(60)),
            session_ttl: layers.session_ttl.unwrap_or(Duration::from_secs(12 * 3600)),
            authorization_request_ttl: layers
                .authorization_request_ttl
                .unwrap_or(Duration::from_secs(30 * 60)),
            par_ttl: layers.par_ttl.unwrap_or(Duration::from_secs(60)),
            device_code_ttl: layers.device_code_ttl.unwrap_or(Duration::from_secs(600)),
            device_poll_interval: layers
                .device_poll_interval
                .unwrap_or(Duration::from_secs(5)),
            user_code_failure_limit: layers.user_code_failure_limit.unwrap_or(10),
            backchannel_logout_retry_for: layers
                .backchannel_logout_retry_for
                .unwrap_or(writ_projector::DEFAULT_LOGOUT_RETRY_FOR),
            ssf_retry_for: layers
                .ssf_retry_for
                .unwrap_or(writ_projector::ssf_push::DEFAULT_RETRY_FOR),
            ssf_long_poll: layers.ssf_long_poll.unwrap_or(Duration::from_secs(30)),
            status_list_ttl: layers.status_list_ttl.unwrap_or(DEFAULT_STATUS_LIST_TTL),
            status_list_valid_for: layers
                .status_list_valid_for
                .unwrap_or(DEFAULT_STATUS_LIST_VALID_FOR),
            status_list_stale_after: layers
                .status_list_stale_after
                .unwrap_or(Duration::from_secs(30)),
            allowed_resources: layers.allowed_resources.clone().unwrap_or_default(),
            require_pushed_authorization_requests: layers
                .require_pushed_authorization_requests
                .unwrap_or(false),
            dpop_proof_max_age: layers.dpop_proof_max_age.unwrap_or(Duration::from_secs(60)),
            require_dpop_nonce: layers.require_dpop_nonce.unwrap_or(false),
            fapi2_security_profile: layers.fapi2_security_profile.unwrap_or(false),
            dpop_nonce_period: layers.dpop_nonce_period.unwrap_or(Duration::from_secs(300)),
            revocation_feed_streams: layers.revocation_feed_streams.unwrap_or(4),
            revocation_feed_poll: layers
                .revocation_feed_poll
                .unwrap_or(Duration::from_millis(100)),
            revocation_feed_recheck: layers
                .revocation_feed_recheck
                .unwrap_or(Duration::from_secs(10)),
            kafka,
            database_url: secret(layers.database_url),
            listen,
            data_dir,
        }
    }
}

/// Kafka, when brokers are named.
fn kafka_settings(layers: &FileConfig) -> Option<writ_infra::kafka::KafkaSettings> {
    let brokers = layers
        .kafka_brokers
        .clone()
        .filter(|brokers| !brokers.is_empty())?;
    let mut kafka = writ_infra::kafka::KafkaSettings::new(brokers);
    if let Some(topic) = layers.kafka_topic.clone() {
        kafka.topic = topic;
    }
    if let Some(partitions) = layers.kafka_partitions {
        kafka.partitions = partitions;
    }
    if let Some(replication) = layers.kafka_replication {
        kafka.replication = replication;
    }
    if let Some(retention) = layers.kafka_retention {
        kafka.retention = retention;
    }
    for (key, value) in layers.kafka_properties.iter().flatten() {
        kafka.properties.retain(|(known, _)| known != key);
        kafka.properties.push((key.clone(), value.clone()));
    }
    Some(kafka)
}

#[cfg(test)]
mod tests;
