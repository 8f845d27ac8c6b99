//! Command-line arguments. Every global setting also reads a `WRIT_*`
//! environment variable; values given neither way come from `--config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "writ",
    version,
    about = "Writ: an event-sourced OAuth 2.1 / OpenID Connect authorization server"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML file with the same keys as the flags (snake_case).
    #[arg(long, global = true, env = "WRIT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded SQLite database [default: ./writ-data].
    #[arg(long, global = true, env = "WRIT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL; overrides --data-dir, and requires an existing key file.
    #[arg(long, global = true, env = "WRIT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The key file [default: <data-dir>/keys].
    #[arg(long, global = true, env = "WRIT_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Log format [default: text].
    #[arg(long, global = true, env = "WRIT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Print JSON (RFC 7591 field names for clients) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the command API, the query API and the projector in one process.
    Serve(ServeArgs),
    /// Run only the write side (authorize, pages, token, revoke, register) on PostgreSQL.
    #[command(name = "command-api")]
    WriteApi(ServeArgs),
    /// Run only the read side (introspect, userinfo, jwks, discovery) on PostgreSQL.
    #[command(name = "query-api")]
    ReadApi(ServeArgs),
    /// Run only the projector (active/standby) on PostgreSQL; serves health and metrics.
    Projector(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the key file.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Replay the log from the start into fresh tables: a named snapshot
    /// (at the head, a cursor or a time), or a comparison with the live
    /// read model (--verify). The live tables are only read.
    Replay(ReplayArgs),
    /// Answer an auditor's questions from the log: grants, consents, one
    /// grant's lineage, who could use a scope, an export.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Print CSV (RFC 4180) instead of a table.
    #[arg(long, global = true)]
    pub csv: bool,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The grants a subject held: scopes, issuance, expiry, revocation.
    Grants {
        /// A `sub`, or a username.
        #[arg(long)]
        subject: String,
        #[arg(long)]
        client: Option<String>,
        /// As they stood at this time (RFC 3339) [default: now].
        #[arg(long, value_parser = parse_time)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// A subject's consent history: granted, extended, withdrawn, by whom,
    /// why, through which request.
    Consents {
        /// A `sub`, or a username.
        #[arg(long)]
        subject: String,
    },
    /// One grant's lineage, every event in order (an exchanged grant's
    /// through every grant it descends from); also `audit lineage`.
    #[command(alias = "lineage")]
    History {
        #[arg(long)]
        grant: String,
        /// `dot` draws it as a Graphviz graph.
        #[arg(long, value_enum, default_value = "table")]
        format: HistoryFormat,
    },
    /// Seal everything committed since the last checkpoint now (the
    /// projector does so every --checkpoint-interval).
    Seal,
    /// Check every stream's hash chain and every signed checkpoint; exit
    /// non-zero on any break.
    Verify,
    /// The subjects and clients holding an active grant with a scope at a
    /// moment.
    WhoCan {
        #[arg(long)]
        scope: String,
        #[arg(long)]
        client: Option<String>,
        /// RFC 3339.
        #[arg(long, value_parser = parse_time)]
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The audit trail between two times, for a SIEM.
    Export {
        /// RFC 3339, inclusive.
        #[arg(long, value_parser = parse_time)]
        from: chrono::DateTime<chrono::Utc>,
        /// RFC 3339, exclusive.
        #[arg(long, value_parser = parse_time)]
        to: chrono::DateTime<chrono::Utc>,
        #[arg(long, value_enum, default_value = "ndjson")]
        format: ExportFormat,
    },
    /// Shared Signals: which receivers were told of a grant's revocation
    /// (or of the signal at a log position), when, and when each
    /// acknowledged; with --receiver, what it was told between two times.
    #[command(group = clap::ArgGroup::new("about").required(true).args(["grant", "position", "receiver"]))]
    Notifications {
        /// A grant's id (`gid`): its revocation's notifications.
        #[arg(long)]
        grant: Option<String>,
        /// A log cursor: the notifications of the signal there.
        #[arg(long)]
        position: Option<String>,
        /// A receiver's client id: what it was told from --from to --to.
        #[arg(long, requires_all = ["from", "to"])]
        receiver: Option<String>,
        /// RFC 3339, inclusive.
        #[arg(long, value_parser = parse_time)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// RFC 3339, exclusive.
        #[arg(long, value_parser = parse_time)]
        to: Option<chrono::DateTime<chrono::Utc>>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum HistoryFormat {
    Table,
    Dot,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Compare a replay of the whole log with the live tables, print every
    /// differing row, and exit non-zero if there is one.
    #[arg(long)]
    pub verify: bool,
    /// The state at the longest prefix of the log committed at or before
    /// this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// The state just after the event at this cursor.
    #[arg(long)]
    pub position: Option<writ_store::Cursor>,
    /// The snapshot's name: PostgreSQL schema snapshot_NAME, or the file
    /// snapshot-NAME.db beside the SQLite database [default: replay].
    #[arg(long)]
    pub into: Option<String>,
    /// Replace the live read model with a replay of the whole log while
    /// Writ keeps serving: commands wait for the switch, none fails.
    #[arg(long, conflicts_with_all = ["verify", "as_of", "position", "into"])]
    pub swap: bool,
}

fn parse_time(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|time| time.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{raw:?} is not an RFC 3339 time ({e}), e.g. 2026-12-01T09:30:00Z"))
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WRIT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Issuer URL [default: http://<listen address>; required by command-api and query-api].
    #[arg(long, env = "WRIT_ISSUER")]
    pub issuer: Option<String>,
    /// Public base URL of the command API, in discovery [default: the issuer].
    #[arg(long, env = "WRIT_PUBLIC_COMMAND_URL")]
    pub public_command_url: Option<String>,
    /// Public base URL of the query API, in discovery [default: the issuer].
    #[arg(long, env = "WRIT_PUBLIC_QUERY_URL")]
    pub public_query_url: Option<String>,
    /// How often the projector checks for commits of other processes [default: 200ms].
    #[arg(long, env = "WRIT_PROJECTOR_CHECK_INTERVAL", value_parser = humantime::parse_duration)]
    pub projector_check_interval: Option<Duration>,
    /// How often the projector seals the log with a signed checkpoint [default: 1m].
    #[arg(long, env = "WRIT_CHECKPOINT_INTERVAL", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Option<Duration>,
    /// Idle lifetime of refresh tokens [default: 14d].
    #[arg(long, env = "WRIT_REFRESH_TOKEN_IDLE_TTL", value_parser = humantime::parse_duration)]
    pub refresh_token_idle_ttl: Option<Duration>,
    /// Access-token signature algorithm: ES256 or EdDSA [default: ES256].
    #[arg(long, env = "WRIT_SIGNING_ALG", value_parser = parse_signing_alg)]
    pub signing_alg: Option<crate::config::SigningAlg>,
    /// Failed authentications per client or account and window [default: 10].
    #[arg(long, env = "WRIT_AUTH_FAILURE_LIMIT")]
    pub auth_failure_limit: Option<u32>,
    /// Window of --auth-failure-limit [default: 1m].
    #[arg(long, env = "WRIT_AUTH_FAILURE_WINDOW", value_parser = humantime::parse_duration)]
    pub auth_failure_window: Option<Duration>,
    /// Failed sign-ins per client IP address and window [default: 100].
    #[arg(long, env = "WRIT_IP_FAILURE_LIMIT")]
    pub ip_failure_limit: Option<u32>,
    /// A reverse proxy (address or CIDR range) whose Forwarded / X-Forwarded-For
    /// name the client's address; repeatable, or comma-separated in the
    /// environment [default: none, the TCP peer is the client].
    #[arg(
        long = "trusted-proxy",
        env = "WRIT_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// Close a connection whose request headers take longer [default: 10s].
    #[arg(long, env = "WRIT_HEADER_READ_TIMEOUT", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Option<Duration>,
    /// Answer 408 when a request body takes longer [default: 30s].
    #[arg(long, env = "WRIT_BODY_READ_TIMEOUT", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Option<Duration>,
    /// Open HTTP connections per process; more wait to be accepted [default: 4096].
    #[arg(long, env = "WRIT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Requests served at once per process; more wait up to --queue-wait,
    /// then get 503 with Retry-After [default: 128].
    #[arg(long, env = "WRIT_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// How long a request past --max-in-flight waits for a place before it
    /// is shed [default: 50ms].
    #[arg(long, env = "WRIT_QUEUE_WAIT", value_parser = humantime::parse_duration)]
    pub queue_wait: Option<Duration>,
    /// Lifetime of authorization codes [default: 60s].
    #[arg(long, env = "WRIT_CODE_TTL", value_parser = humantime::parse_duration)]
    pub code_ttl: Option<Duration>,
    /// How long a sign-in or consent form stays usable [default: 30m].
    #[arg(long, env = "WRIT_AUTHORIZATION_REQUEST_TTL", value_parser = humantime::parse_duration)]
    pub authorization_request_ttl: Option<Duration>,
    /// An RFC 8707 resource this server issues tokens for (repeatable);
    /// unset, any absolute URI without a fragment [default: unset].
    #[arg(
        long = "allowed-resource",
        env = "WRIT_ALLOWED_RESOURCES",
        value_delimiter = ','
    )]
    pub allowed_resources: Vec<String>,
    /// Lifetime of a pushed authorization request's request_uri, under 10m [default: 60s].
    #[arg(long, env = "WRIT_PAR_TTL", value_parser = humantime::parse_duration)]
    pub par_ttl: Option<Duration>,
    /// Lifetime of a device code and its user code (RFC 8628), 1s to 1h [default: 10m].
    #[arg(long, env = "WRIT_DEVICE_CODE_TTL", value_parser = humantime::parse_duration)]
    pub device_code_ttl: Option<Duration>,
    /// How often a device may poll the token endpoint (RFC 8628 §3.2), 1s to 1m [default: 5s].
    #[arg(long, env = "WRIT_DEVICE_POLL_INTERVAL", value_parser = humantime::parse_duration)]
    pub device_poll_interval: Option<Duration>,
    /// How long a relying party's back-channel logout token is retried before it is given up, 1s to 7d [default: 24h].
    #[arg(long, env = "WRIT_BACKCHANNEL_LOGOUT_RETRY_FOR", value_parser = humantime::parse_duration)]
    pub backchannel_logout_retry_for: Option<Duration>,
    /// How long a Shared Signals push receiver is retried for one SET before it is abandoned, 1s to 7d [default: 1h].
    #[arg(long, env = "WRIT_SSF_RETRY_FOR", value_parser = humantime::parse_duration)]
    pub ssf_retry_for: Option<Duration>,
    /// How long a Shared Signals poll (RFC 8936) waits for a SET before answering empty, 1s to 1m [default: 30s].
    #[arg(long, env = "WRIT_SSF_LONG_POLL", value_parser = humantime::parse_duration)]
    pub ssf_long_poll: Option<Duration>,
    /// How long a resource server may cache a token status list before fetching it again (its `ttl`), 1s to 1d [default: 5m].
    #[arg(long, env = "WRIT_STATUS_LIST_TTL", value_parser = humantime::parse_duration)]
    pub status_list_ttl: Option<Duration>,
    /// How long a signed token status list may be relied on at all (its `exp`), at least its ttl, up to 30d [default: 1d].
    #[arg(long, env = "WRIT_STATUS_LIST_VALID_FOR", value_parser = humantime::parse_duration)]
    pub status_list_valid_for: Option<Duration>,
    /// How long the projector may leave an event unprojected before token status lists are refused (503) rather than signed over bits that may miss a revocation, 1s to 1h [default: 30s].
    #[arg(long, env = "WRIT_STATUS_LIST_STALE_AFTER", value_parser = humantime::parse_duration)]
    pub status_list_stale_after: Option<Duration>,
    /// User codes one address (an IPv6 /64) may try on /device per auth_failure_window [default: 10].
    #[arg(long, env = "WRIT_USER_CODE_FAILURE_LIMIT")]
    pub user_code_failure_limit: Option<u32>,
    /// Every client's authorization requests must be pushed first (RFC 9126) [default: false].
    #[arg(long = "require-par", env = "WRIT_REQUIRE_PAR", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub require_pushed_authorization_requests: Option<bool>,
    /// Hold every client to the FAPI 2.0 Security Profile (docs/fapi2.md) [default: false].
    #[arg(long = "fapi2", env = "WRIT_FAPI2", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub fapi2_security_profile: Option<bool>,
    /// How old a DPoP proof's iat may be, 1s to 10m (RFC 9449) [default: 60s].
    #[arg(long, env = "WRIT_DPOP_PROOF_MAX_AGE", value_parser = humantime::parse_duration)]
    pub dpop_proof_max_age: Option<Duration>,
    /// Every DPoP proof must carry a server nonce (RFC 9449 §8) [default: false].
    #[arg(long = "require-dpop-nonce", env = "WRIT_REQUIRE_DPOP_NONCE", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub require_dpop_nonce: Option<bool>,
    /// How long a DPoP nonce is handed out; each is accepted for twice that [default: 5m].
    #[arg(long, env = "WRIT_DPOP_NONCE_PERIOD", value_parser = humantime::parse_duration)]
    pub dpop_nonce_period: Option<Duration>,
    /// Lifetime of a browser session after sign-in [default: 12h].
    #[arg(long, env = "WRIT_SESSION_TTL", value_parser = humantime::parse_duration)]
    pub session_ttl: Option<Duration>,
    /// Initial access token for dynamic client registration [default: unset, /register disabled].
    #[arg(long, env = "WRIT_REGISTRATION_TOKEN", hide_env_values = true)]
    pub registration_token: Option<String>,
    /// Bearer token of the audit API (/audit/… on the query API) [default: unset, disabled].
    #[arg(long, env = "WRIT_AUDIT_TOKEN", hide_env_values = true)]
    pub audit_token: Option<String>,
    /// Open GET /revocations streams per client and process [default: 4].
    #[arg(long, env = "WRIT_REVOCATION_FEED_STREAMS")]
    pub revocation_feed_streams: Option<u32>,
    /// How often the revocation feed looks for other processes' commits [default: 100ms].
    #[arg(long, env = "WRIT_REVOCATION_FEED_POLL", value_parser = humantime::parse_duration)]
    pub revocation_feed_poll: Option<Duration>,
    /// How often an idle revocation stream checks its client may still subscribe [default: 10s].
    #[arg(long, env = "WRIT_REVOCATION_FEED_RECHECK", value_parser = humantime::parse_duration)]
    pub revocation_feed_recheck: Option<Duration>,
    /// Kafka bootstrap servers; revocations are published there [default: unset].
    #[arg(long, env = "WRIT_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// The revocation topic [default: writ.revocations].
    #[arg(long, env = "WRIT_KAFKA_TOPIC")]
    pub kafka_topic: Option<String>,
    /// Partitions of the topic when Writ creates it [default: 3].
    #[arg(long, env = "WRIT_KAFKA_PARTITIONS")]
    pub kafka_partitions: Option<i32>,
    /// Replication factor of the topic when Writ creates it; -1 is the broker's default [default: -1].
    #[arg(long, env = "WRIT_KAFKA_REPLICATION", allow_hyphen_values = true)]
    pub kafka_replication: Option<i32>,
    /// retention.ms of the topic when Writ creates it [default: 7d].
    #[arg(long, env = "WRIT_KAFKA_RETENTION", value_parser = humantime::parse_duration)]
    pub kafka_retention: Option<Duration>,
    /// Another librdkafka property, KEY=VALUE (TLS, SASL, …); repeatable.
    #[arg(long = "kafka-property", value_parser = parse_property)]
    pub kafka_properties: Vec<(String, String)>,
}

fn parse_property(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{raw:?} is not KEY=VALUE"))
}

fn parse_signing_alg(raw: &str) -> Result<crate::config::SigningAlg, String> {
    crate::config::SigningAlg::parse(raw).ok_or_else(|| format!("{raw:?} is not ES256 or EdDSA"))
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new key file (mode 0600); refuses to overwrite one.
    Init,
    /// List the signing keys and their status.
    List,
    /// Generate and activate a new signing key; the previous one is
    /// retired but stays published while tokens it signed live.
    Rotate {
        /// ES256, EdDSA or RS256 [default: the signing_alg setting].
        #[arg(long)]
        alg: Option<String>,
    },
}

#[derive(Debug, Args, Default)]
pub struct ClientFields {
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Registered redirect URI (repeatable; exact match).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Allowed grant type (repeatable): authorization_code, client_credentials, refresh_token, password, device_code (RFC 8628), token_exchange (RFC 8693).
    #[arg(long = "grant-type")]
    pub grant_types: Vec<String>,
    /// Space-separated scopes the client may request.
    #[arg(long)]
    pub scope: Option<String>,
    /// web or native.
    #[arg(long, value_parser = ["web", "native"])]
    pub application_type: Option<String>,
    /// jwt or opaque.
    #[arg(long, value_parser = ["jwt", "opaque"])]
    pub token_format: Option<String>,
    /// Access-token lifetime [default: the access_token_ttl setting, 5m].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub access_token_ttl: Option<Duration>,
    /// Refresh-token lifetime [default: the refresh_token_ttl setting, 30d].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub refresh_token_ttl: Option<Duration>,
    /// Audience of the client's access tokens (repeatable).
    #[arg(long)]
    pub audience: Vec<String>,
    /// RFC 8707 resource URI this confidential client answers for as a
    /// resource server: it may introspect tokens whose audience names it
    /// (repeatable; exact match).
    #[arg(long = "resource")]
    pub resources: Vec<String>,
    /// Where RP-initiated logout may return the browser (repeatable; exact match).
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// id_token signature: RS256 (the default), ES256 or EdDSA.
    #[arg(long, value_parser = ["RS256", "ES256", "EdDSA"])]
    pub id_token_alg: Option<String>,
    /// May subscribe to GET /revocations: `--revocation-feed` or `--revocation-feed=false`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub revocation_feed: Option<bool>,
    /// Its authorization requests must be pushed first (RFC 9126):
    /// `--require-par` or `--require-par=false`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub require_par: Option<bool>,
    /// Every token request must carry a DPoP proof, so every access token
    /// is bound to a key (RFC 9449): `--dpop-bound` or `--dpop-bound=false`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub dpop_bound: Option<bool>,
    /// Hold it to the FAPI 2.0 Security Profile (docs/fapi2.md): needs
    /// --jwks-uri or --jwks-file, and sets --require-par and --dpop-bound:
    /// `--fapi2` or `--fapi2=false`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub fapi2: Option<bool>,
    /// Authenticate with private_key_jwt, its public keys fetched from this
    /// URL (https, or http on a loopback address); no secret.
    #[arg(long, conflicts_with = "jwks_file")]
    pub jwks_uri: Option<String>,
    /// Authenticate with private_key_jwt, its public keys read from this
    /// JWK Set file; no secret.
    #[arg(long)]
    pub jwks_file: Option<std::path::PathBuf>,
    /// Where a logout token is POSTed when a session it received an
    /// id_token in ends (OpenID Connect Back-Channel Logout): https, or
    /// http on a loopback address; "" removes it.
    #[arg(long)]
    pub backchannel_logout_uri: Option<String>,
    /// Record that it requires `sid` in logout tokens (Writ always sends
    /// it): `--backchannel-logout-session-required` or `=false`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub backchannel_logout_session_required: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its secret once.
    Create {
        #[command(flatten)]
        fields: ClientFields,
        /// A public client (no secret; PKCE required).
        #[arg(long)]
        public: bool,
        /// Use this client id instead of a random one (for demos).
        #[arg(long)]
        client_id: Option<String>,
        /// Read the secret from standard input instead of generating one (for demos).
        #[arg(long)]
        secret_stdin: bool,
        /// Accept a secret from stdin shorter than 32 characters (for demos only).
        #[arg(long, requires = "secret_stdin")]
        allow_weak_secret: bool,
    },
    /// List clients.
    List,
    /// Show one client.
    Show { client_id: String },
    /// Change a client's settings; flags not given keep their value.
    Update {
        client_id: String,
        #[command(flatten)]
        fields: ClientFields,
    },
    /// Replace the client's secret; prints the new one once.
    RotateSecret { client_id: String },
    /// Disable a client; its tokens stop working.
    Disable {
        client_id: String,
        #[arg(long, default_value = "disabled by an administrator")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Create {
        #[arg(long)]
        username: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List accounts.
    List,
    /// Show one account.
    Show { username: String },
    /// Set a new password, read from standard input.
    SetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account.
    Disable {
        username: String,
        #[arg(long, default_value = "disabled by an administrator")]
        reason: String,
    },
    /// Enable a disabled account again; its earlier grants stay revoked.
    Enable {
        username: String,
        #[arg(long, default_value = "enabled by an administrator")]
        reason: String,
    },
    /// Forget a person: delete their data key; the log keeps only ciphertext.
    Forget { username: String },
    /// End every browser session of a person, revoking the grants issued in
    /// them, as their own logout would.
    SignOut { username: String },
}
