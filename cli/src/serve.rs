//! `writ serve`: command API, query API and projector in one process, on
//! the embedded SQLite store, until SIGINT or SIGTERM.

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use writ_command_api::browser::{BrowserKey, BrowserSettings};
use writ_command_api::{CommandState, RegistrationDefaults};
use writ_infra::config::Settings;
use writ_infra::http::Throttle;
use writ_infra::keys::WhenMissing;
use writ_infra::signing::{self, KeySet};
use writ_projector::Projector;
use writ_query_api::QueryState;

use crate::context::Context;

pub async fn run(mut settings: Settings) -> anyhow::Result<()> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let bound = listener.local_addr()?;
    if settings.issuer.ends_with(":0") {
        // `--listen 127.0.0.1:0` picks a port; the default issuer follows it.
        settings.issuer = format!("http://{bound}");
    }
    let context = Context::open_with(settings, WhenMissing::Create).await?;
    let (stop, stopped) = watch::channel(false);
    let projector = Projector::new(
        context.store.clone(),
        context.settings.projector_check_interval,
    )
    .await?
    .with_policies(context.executor.clone());
    let projector = tokio::spawn(projector.run_until_stopped(stopped));

    let settings = &context.settings;
    let signing_alg = settings.signing_alg.as_str();
    // id_tokens are RS256 by default (OpenID Connect); clients may ask for
    // ES256 or EdDSA instead, so all three keys exist.
    signing::ensure_active(
        &context.executor,
        &context.store,
        &context.keys,
        // Every id_token algorithm a client may choose.
        &["ES256", "EdDSA", "RS256"],
    )
    .await
    .context("cannot prepare the signing keys")?;
    let keys = KeySet::load(context.store.clone(), context.keys.clone())
        .await
        .context("cannot load the signing keys")?;
    keys.spawn_reloader();
    let throttle = Throttle::new(settings.auth_failure_limit, settings.auth_failure_window);
    let issuer = settings.issuer.clone();
    let app = writ_command_api::router(CommandState {
        executor: context.executor.clone(),
        store: context.store.clone(),
        issuer: issuer.clone(),
        keys: keys.clone(),
        key_ring: context.keys.clone(),
        throttle: throttle.clone(),
        signing_alg: signing_alg.to_owned(),
        refresh_token_idle_ttl: settings.refresh_token_idle_ttl,
        registration: RegistrationDefaults {
            initial_access_token: settings.registration_token.clone(),
            access_token_ttl: settings.access_token_ttl,
            refresh_token_ttl: settings.refresh_token_ttl,
        },
        browser: BrowserSettings {
            key: BrowserKey::derive(&context.keys),
            code_ttl: settings.code_ttl,
            session_ttl: settings.session_ttl,
            request_ttl: settings.authorization_request_ttl,
            ip_throttle: Throttle::new(settings.ip_failure_limit, settings.auth_failure_window),
            secure_cookies: issuer.starts_with("https://"),
        },
    })
    .merge(writ_query_api::router(QueryState {
        store: context.store.clone(),
        issuer: issuer.clone(),
        keys,
        key_ring: context.keys.clone(),
        throttle,
        registration_enabled: settings.registration_token.is_some(),
    }));
    let app = writ_infra::telemetry::layer(app);

    let durability = context.store.durability().await.unwrap_or_default();
    let durability: Vec<String> = durability
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    tracing::info!(
        address = %bound,
        issuer = %issuer,
        database = %context.store.target().describe(),
        durability = %durability.join(" "),
        "writ listening on {bound}"
    );
    // The peer address feeds the per-IP sign-in throttle.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    let _ = stop.send(true);
    let _ = projector.await;
    tracing::info!("writ stopped");
    Ok(())
}

async fn shutdown_signal() {
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
