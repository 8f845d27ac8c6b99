//! Settings resolution and what every administrative command opens: the
//! key file (refused when missing), the store and an executor.

use std::io::BufRead;

use crate::config::{FileConfig, Overrides, Settings};
use crate::telemetry::LogFormat;
use anyhow::Context as _;
use secrecy::ExposeSecret;
use writ_infra::keys::{KeyRing, WhenMissing};
use writ_store::DEFAULT_MAX_BATCH;
use writ_store::{Executor, Store};

use crate::args::{GlobalArgs, LogFormatArg, ServeArgs};

pub fn resolve_settings(
    global: &GlobalArgs,
    serve: Option<&ServeArgs>,
) -> anyhow::Result<Settings> {
    let overrides = Overrides {
        listen: serve.and_then(|s| s.listen),
        issuer: serve.and_then(|s| s.issuer.clone()),
        data_dir: global.data_dir.clone(),
        database_url: global.database_url.clone(),
        key_file: global.key_file.clone(),
        log_format: global.log_format.map(|f| match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }),
        projector_check_interval: serve.and_then(|s| s.projector_check_interval),
        checkpoint_interval: serve.and_then(|s| s.checkpoint_interval),
        refresh_token_idle_ttl: serve.and_then(|s| s.refresh_token_idle_ttl),
        signing_alg: serve.and_then(|s| s.signing_alg),
        auth_failure_limit: serve.and_then(|s| s.auth_failure_limit),
        auth_failure_window: serve.and_then(|s| s.auth_failure_window),
        registration_token: serve.and_then(|s| s.registration_token.clone()),
        audit_token: serve.and_then(|s| s.audit_token.clone()),
        ip_failure_limit: serve.and_then(|s| s.ip_failure_limit),
        trusted_proxies: serve
            .filter(|s| !s.trusted_proxies.is_empty())
            .map(|s| s.trusted_proxies.clone()),
        header_read_timeout: serve.and_then(|s| s.header_read_timeout),
        body_read_timeout: serve.and_then(|s| s.body_read_timeout),
        max_connections: serve.and_then(|s| s.max_connections),
        max_in_flight: serve.and_then(|s| s.max_in_flight),
        queue_wait: serve.and_then(|s| s.queue_wait),
        code_ttl: serve.and_then(|s| s.code_ttl),
        session_ttl: serve.and_then(|s| s.session_ttl),
        authorization_request_ttl: serve.and_then(|s| s.authorization_request_ttl),
        par_ttl: serve.and_then(|s| s.par_ttl),
        device_code_ttl: serve.and_then(|s| s.device_code_ttl),
        device_poll_interval: serve.and_then(|s| s.device_poll_interval),
        user_code_failure_limit: serve.and_then(|s| s.user_code_failure_limit),
        backchannel_logout_retry_for: serve.and_then(|s| s.backchannel_logout_retry_for),
        ssf_retry_for: serve.and_then(|s| s.ssf_retry_for),
        ssf_long_poll: serve.and_then(|s| s.ssf_long_poll),
        status_list_ttl: serve.and_then(|s| s.status_list_ttl),
        status_list_valid_for: serve.and_then(|s| s.status_list_valid_for),
        status_list_stale_after: serve.and_then(|s| s.status_list_stale_after),
        allowed_resources: serve
            .filter(|s| !s.allowed_resources.is_empty())
            .map(|s| s.allowed_resources.clone()),
        require_pushed_authorization_requests: serve
            .and_then(|s| s.require_pushed_authorization_requests),
        dpop_proof_max_age: serve.and_then(|s| s.dpop_proof_max_age),
        fapi2_security_profile: serve.and_then(|s| s.fapi2_security_profile),
        require_dpop_nonce: serve.and_then(|s| s.require_dpop_nonce),
        dpop_nonce_period: serve.and_then(|s| s.dpop_nonce_period),
        public_command_url: serve.and_then(|s| s.public_command_url.clone()),
        public_query_url: serve.and_then(|s| s.public_query_url.clone()),
        revocation_feed_streams: serve.and_then(|s| s.revocation_feed_streams),
        revocation_feed_poll: serve.and_then(|s| s.revocation_feed_poll),
        revocation_feed_recheck: serve.and_then(|s| s.revocation_feed_recheck),
        kafka_brokers: serve.and_then(|s| s.kafka_brokers.clone()),
        kafka_topic: serve.and_then(|s| s.kafka_topic.clone()),
        kafka_partitions: serve.and_then(|s| s.kafka_partitions),
        kafka_replication: serve.and_then(|s| s.kafka_replication),
        kafka_retention: serve.and_then(|s| s.kafka_retention),
        kafka_properties: serve
            .filter(|s| !s.kafka_properties.is_empty())
            .map(|s| s.kafka_properties.iter().cloned().collect()),
        ..Default::default()
    };
    let layers = FileConfig::layered(global.config.as_deref(), &overrides)?;
    Ok(Settings::resolve(layers))
}

pub struct Context {
    pub settings: Settings,
    pub keys: KeyRing,
    pub store: Store,
    pub executor: Executor,
    /// Set when the process is told to stop, for responses that never end
    /// on their own (the revocation feed).
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// `private_key_jwt` clients' fetched key sets, shared by both APIs.
    pub client_keys: writ_infra::client_keys::ClientKeys,
}

impl Context {
    /// For every command but `serve`: a missing key file is an error, so
    /// two processes never invent different keys for one database.
    pub async fn open(settings: Settings) -> anyhow::Result<Self> {
        Self::open_with(settings, WhenMissing::Refuse).await
    }

    /// `serve` may create the key file, but only for embedded SQLite: with
    /// a shared PostgreSQL database every process must use the same keys.
    pub async fn open_with(settings: Settings, when_missing: WhenMissing) -> anyhow::Result<Self> {
        writ_edge::TrustedProxies::parse(&settings.trusted_proxies).map_err(anyhow::Error::msg)?;
        let (keys, store) = match &settings.database_url {
            Some(url) => {
                let keys = KeyRing::load(&settings.key_file, WhenMissing::Refuse)?;
                let url = url.expose_secret();
                (keys, Store::open_postgres(url, DEFAULT_MAX_BATCH).await?)
            }
            None => {
                check_data_dir(&settings)?;
                let keys = KeyRing::load(&settings.key_file, when_missing)?;
                (keys, Store::open_sqlite(&settings.data_dir).await?)
            }
        };
        let executor = Executor::new(store.clone(), writ_store::services::synced(&store).await);
        Ok(Self {
            settings,
            keys,
            store,
            executor,
            stopping: tokio::sync::watch::channel(false).0,
            client_keys: writ_infra::client_keys::ClientKeys::default(),
        })
    }
}

/// An unreadable data directory is reported as such, before the key file
/// (which usually lives inside it) is blamed.
fn check_data_dir(settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.data_dir;
    if dir.exists() {
        std::fs::read_dir(dir)
            .with_context(|| format!("data directory {} is not readable", dir.display()))?;
    }
    Ok(())
}

/// Reads one line from standard input without its line ending.
pub fn read_stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
