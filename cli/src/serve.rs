//! `writ serve`: command API, query API and projector in one process, on
//! the embedded SQLite store (or PostgreSQL), until SIGINT or SIGTERM. The
//! pieces are built here once and shared with the split processes
//! (`split.rs`).

use crate::config::Settings;
use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use writ_command_api::browser::{BrowserKey, BrowserSettings};
use writ_command_api::device::DeviceSettings;
use writ_command_api::{CommandContext, RegistrationDefaults};
use writ_edge::client_assertion::Assertions;
use writ_edge::dpop::{DpopSettings, Nonces};
use writ_edge::metrics::Registry;
use writ_edge::{Throttle, TrustedProxies};
use writ_infra::keys::WhenMissing;
use writ_infra::signing::{self, KeySet};
use writ_infra::status_lists::StatusAllocator;
use writ_projector::backchannel::{Deliverer, Signing};
use writ_projector::ssf_push::Pusher;
use writ_projector::{Projector, Publisher};
use writ_query_api::{FeedLimits, QueryContext, RevocationFeed, StatusListSettings};

use crate::context::Context;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let (listener, settings) = bind(settings).await?;
    let context = Context::open_with(settings, WhenMissing::Create).await?;
    let (stop, stopped) = watch::channel(false);
    let projector = projector(&context).await?;
    let mut registry = Registry::new(context.store.metrics_handle()).with(projector.metrics());
    let publisher = match publisher(&context).await? {
        Some(publisher) => {
            registry = registry.with(publisher.metrics());
            Some(tokio::spawn(publisher.run_until_stopped(stopped.clone())))
        }
        None => None,
    };
    let keys = signing_keys(&context, true).await?;
    let deliverer = deliverer(&context, &keys);
    registry = registry.with(deliverer.metrics());
    let deliverer = tokio::spawn(deliverer.run_until_stopped(stopped.clone()));
    let pusher = pusher(&context, &keys);
    registry = registry.with(pusher.metrics());
    let pusher = tokio::spawn(pusher.run_until_stopped(stopped.clone(), PUSH_TICK));
    let sealer = tokio::spawn(seal_periodically(&context, stopped.clone()));
    let projector = tokio::spawn(projector.run_until_stopped(stopped));
    let throttle = throttle(&context.settings);
    let app = command_router(&context, &keys, &throttle)
        .await?
        .merge(query_router(&context, &keys, &throttle));
    serve_http(listener, &context, app, registry).await?;
    let _ = stop.send(true);
    let _ = projector.await;
    let _ = sealer.await;
    let _ = deliverer.await;
    let _ = pusher.await;
    if let Some(publisher) = publisher {
        let _ = publisher.await;
    }
    tracing::info!("writ stopped");
    Ok(())
}

/// Binds `listen`; with port 0 the default issuer (and the public URLs
/// that follow it) take the port actually bound.
pub async fn bind(mut settings: Settings) -> anyhow::Result<(TcpListener, Settings)> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let bound = listener.local_addr()?;
    if !settings.issuer_given && settings.issuer.ends_with(":0") {
        let derived = format!("http://{bound}");
        for url in [
            &mut settings.public_command_url,
            &mut settings.public_query_url,
        ] {
            if *url == settings.issuer {
                *url = derived.clone();
            }
        }
        settings.issuer = derived;
    }
    Ok((listener, settings))
}

pub async fn projector(context: &Context) -> anyhow::Result<Projector> {
    Ok(Projector::new(
        context.store.clone(),
        context.settings.projector_check_interval,
    )
    .await?
    .with_policies(
        context.executor.clone(),
        context.settings.backchannel_logout_retry_for,
    ))
}

/// Delivers back-channel logout tokens from the log's outbox; it runs
/// beside the projector, whose policy schedules them.
pub fn deliverer(context: &Context, keys: &KeySet) -> Deliverer {
    let settings = &context.settings;
    Deliverer::new(
        context.store.clone(),
        context.executor.clone(),
        Signing {
            keys: keys.clone(),
            issuer: settings.issuer.clone(),
            access_token_alg: settings.signing_alg.as_str().to_owned(),
            fapi2: settings.fapi2_security_profile,
        },
    )
}

/// How often the Shared Signals pusher looks for new signals: a SET
/// reaches a push receiver about this long after its event commits.
pub const PUSH_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// Pushes Shared Signals streams' SETs from the log; it runs beside the
/// projector, like the back-channel deliverer.
pub fn pusher(context: &Context, keys: &KeySet) -> Pusher {
    let settings = &context.settings;
    Pusher::new(
        context.store.clone(),
        context.executor.clone(),
        keys.clone(),
        context.keys.clone(),
        settings.issuer.clone(),
        settings.ssf_retry_for,
    )
}

/// Seals the log with a signed checkpoint every `checkpoint_interval`
/// until stopped, and once more on the way out (ADR 0017).
pub fn seal_periodically(
    context: &Context,
    mut stopped: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (store, keys) = (context.store.clone(), context.keys.clone());
    let every = context.settings.checkpoint_interval;
    async move {
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(every) => false,
                _ = stopped.wait_for(|stopped| *stopped) => true,
            };
            match writ_store::seal::seal(&store, &keys.checkpoint.0).await {
                Ok(Some(checkpoint)) => {
                    tracing::debug!(cursor = %checkpoint.cursor, events = checkpoint.event_count, "sealed the log")
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "cannot seal the log; will try again"),
            }
            if stopping {
                return;
            }
        }
    }
}

/// The revocation publisher when Kafka is configured. The topic is
/// created if missing and its retention checked; a broker that cannot be
/// reached yet is only warned about, since the publisher waits for it.
pub async fn publisher(context: &Context) -> anyhow::Result<Option<Publisher>> {
    let Some(kafka) = &context.settings.kafka else {
        return Ok(None);
    };
    if let Err(err) = kafka.ensure_topic().await {
        tracing::warn!(topic = %kafka.topic, error = %err, "cannot create the revocation topic; publishing will wait for the broker");
    }
    if let Some(problem) = kafka
        .retention_problem(context.settings.access_token_ttl)
        .await
    {
        tracing::warn!(topic = %kafka.topic, problem = %problem, "the revocation topic may drop revocations of tokens still alive");
    }
    let publisher = Publisher::new(
        context.store.clone(),
        kafka,
        context.settings.projector_check_interval,
    )
    .await?;
    tracing::info!(brokers = %kafka.brokers, topic = %kafka.topic, "publishing revocations to Kafka");
    Ok(Some(publisher))
}

/// The signing keys; `ensure` creates any that are missing (the processes
/// that sign do, the query API only reads them).
pub async fn signing_keys(context: &Context, ensure: bool) -> anyhow::Result<KeySet> {
    if ensure {
        // Access tokens use the configured algorithm; id_tokens are RS256
        // by default (OpenID Connect) and clients may ask for ES256 or
        // EdDSA, so all three keys exist.
        signing::ensure_active(
            &context.executor,
            &context.store,
            &context.keys,
            &["ES256", "EdDSA", "RS256"],
        )
        .await
        .context("cannot prepare the signing keys")?;
    }
    let keys = KeySet::load(context.store.clone(), context.keys.clone())
        .await
        .context("cannot load the signing keys")?;
    keys.spawn_reloader();
    Ok(keys)
}

pub fn throttle(settings: &Settings) -> Throttle {
    Throttle::new(settings.auth_failure_limit, settings.auth_failure_window)
}

fn trusted_proxies(settings: &Settings) -> TrustedProxies {
    // Checked by `Context::open_with` before anything is served.
    TrustedProxies::parse(&settings.trusted_proxies).unwrap_or_default()
}

pub async fn command_router(
    context: &Context,
    keys: &KeySet,
    throttle: &Throttle,
) -> anyhow::Result<OpenApiRouter> {
    let settings = &context.settings;
    let status_lists =
        StatusAllocator::open(context.executor.clone(), &settings.public_query_url).await?;
    Ok(writ_command_api::router(
        CommandContext {
            executor: context.executor.clone(),
            store: context.store.clone(),
            issuer: settings.issuer.clone(),
            public_url: settings.public_command_url.clone(),
            keys: keys.clone(),
            key_ring: context.keys.clone(),
            throttle: throttle.clone(),
            assertions: assertions(context, &settings.public_command_url),
            dpop: dpop(context, &settings.public_command_url),
            fapi2: settings.fapi2_security_profile,
            account_throttle: self::throttle(settings),
            trusted_proxies: trusted_proxies(settings),
            signing_alg: settings.signing_alg.as_str().to_owned(),
            refresh_token_idle_ttl: settings.refresh_token_idle_ttl,
            registration: RegistrationDefaults {
                initial_access_token: exposed(&settings.registration_token),
                access_token_ttl: settings.access_token_ttl,
                refresh_token_ttl: settings.refresh_token_ttl,
                public_url: settings.public_command_url.clone(),
            },
            allowed_resources: settings.allowed_resources.clone(),
            ssf_long_poll: settings.ssf_long_poll,
            stopping: context.stopping.subscribe(),
            status_lists,
            device: DeviceSettings::new(
                settings.device_code_ttl,
                settings.device_poll_interval,
                Throttle::new(
                    settings.user_code_failure_limit,
                    settings.auth_failure_window,
                ),
            ),
            browser: BrowserSettings {
                key: BrowserKey::derive(&context.keys),
                code_ttl: settings.code_ttl,
                session_ttl: settings.session_ttl,
                request_ttl: settings.authorization_request_ttl,
                par_ttl: settings.par_ttl,
                require_pushed_authorization_requests: settings
                    .require_pushed_authorization_requests,
                public_pushes: Throttle::new(
                    settings.ip_failure_limit,
                    settings.auth_failure_window,
                ),
                ip_throttle: Throttle::new(settings.ip_failure_limit, settings.auth_failure_window),
                secure_cookies: settings.issuer.starts_with("https://"),
            },
        }
        .into(),
    ))
}

fn assertions(context: &Context, public_base: &str) -> Assertions {
    Assertions {
        executor: context.executor.clone(),
        issuer: context.settings.issuer.clone(),
        public_base: public_base.to_owned(),
        keys: context.client_keys.clone(),
        fapi2: context.settings.fapi2_security_profile,
    }
}

fn dpop(context: &Context, public_base: &str) -> DpopSettings {
    let settings = &context.settings;
    DpopSettings {
        executor: context.executor.clone(),
        public_base: public_base.to_owned(),
        proof_max_age: settings.dpop_proof_max_age,
        nonces: settings
            .require_dpop_nonce
            .then(|| Nonces::new(&context.keys, settings.dpop_nonce_period)),
    }
}

/// A token handed to the API state, which compares it in constant time
/// and never prints it.
fn exposed(secret: &Option<secrecy::SecretString>) -> Option<String> {
    use secrecy::ExposeSecret;
    secret
        .as_ref()
        .map(|token| token.expose_secret().to_owned())
}

pub fn query_router(context: &Context, keys: &KeySet, throttle: &Throttle) -> OpenApiRouter {
    let settings = &context.settings;
    writ_query_api::router(
        QueryContext {
            store: context.store.clone(),
            issuer: settings.issuer.clone(),
            command_url: settings.public_command_url.clone(),
            query_url: settings.public_query_url.clone(),
            keys: keys.clone(),
            services: context.executor.services().clone(),
            key_ring: context.keys.clone(),
            throttle: throttle.clone(),
            assertions: assertions(context, &settings.public_query_url),
            dpop: dpop(context, &settings.public_query_url),
            fapi2: settings.fapi2_security_profile,
            trusted_proxies: trusted_proxies(settings),
            registration_enabled: settings.registration_token.is_some(),
            require_pushed_authorization_requests: settings.require_pushed_authorization_requests,
            signing_alg: settings.signing_alg.as_str().to_owned(),
            audit_token: exposed(&settings.audit_token),
            stopping: context.stopping.subscribe(),
            feed: RevocationFeed::new(
                context.store.clone(),
                FeedLimits {
                    streams_per_client: settings.revocation_feed_streams,
                    poll: settings.revocation_feed_poll,
                    recheck: settings.revocation_feed_recheck,
                },
                context.stopping.subscribe(),
            ),
            status_lists: StatusListSettings::new(
                settings.status_list_ttl,
                settings.status_list_valid_for,
                settings.status_list_stale_after,
            ),
        }
        .into(),
    )
}

/// Serves `app` with `/metrics`, `/openapi.json`, request ids and the
/// access log until SIGINT or SIGTERM; in-flight requests finish first.
pub async fn serve_http(
    listener: TcpListener,
    context: &Context,
    app: OpenApiRouter,
    registry: Registry,
) -> anyhow::Result<()> {
    let bound = listener.local_addr()?;
    let settings = &context.settings;
    let admission = writ_edge::admission::Admission::new(writ_edge::admission::Limits {
        max_in_flight: settings.max_in_flight,
        queue_wait: settings.queue_wait,
    });
    let app = crate::telemetry::layer(registry.with(admission.metrics()).attach(app));
    let durability = context.store.durability().await.unwrap_or_default();
    let durability: Vec<String> = durability
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    tracing::info!(
        address = %bound,
        issuer = %context.settings.issuer,
        database = %context.store.target().describe(),
        durability = %durability.join(" "),
        "writ listening on {bound}"
    );
    // Body deadlines and the size cap apply to every route, /metrics too,
    // and to the gate, which reads a body before the request takes a place.
    // A shed request costs no request id and no access-log line (a flood
    // would drown the log); the shed count is in /metrics.
    let app = writ_edge::body::limit(admission.guard(app), settings.body_read_timeout);
    let limits = crate::http_server::Limits {
        header_read_timeout: settings.header_read_timeout,
        max_connections: settings.max_connections,
    };
    let stopping = context.stopping.clone();
    crate::http_server::serve(listener, app, limits, async move {
        shutdown_signal().await;
        stopping.send_replace(true);
    })
    .await;
    Ok(())
}

pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
