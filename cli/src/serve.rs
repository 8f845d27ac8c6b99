//! `writ serve`: command API, query API and projector in one process, on
//! the embedded SQLite store, until SIGINT or SIGTERM.

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use writ_command_api::CommandState;
use writ_infra::config::Settings;
use writ_infra::keys::WhenMissing;
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
    .await?;
    let projector = tokio::spawn(projector.run_until_stopped(stopped));

    let issuer = context.settings.issuer.clone();
    let app = writ_command_api::router(CommandState {
        executor: context.executor.clone(),
        issuer: issuer.clone(),
    })
    .merge(writ_query_api::router(QueryState {
        store: context.store.clone(),
        issuer: issuer.clone(),
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
