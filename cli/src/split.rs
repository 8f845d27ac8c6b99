//! The split deployment: `writ command-api`, `writ query-api` and `writ
//! projector` as separate processes on one PostgreSQL. The APIs are
//! stateless, so any number run side by side behind the user's load
//! balancer; every security-critical read goes to the primary.

use crate::config::Settings;
use anyhow::bail;
use tokio::sync::watch;
use writ_edge::metrics::Registry;

use crate::context::Context;
use crate::serve;

/// The split processes share one database and must agree on the issuer.
fn check(settings: &Settings, what: &str) -> anyhow::Result<()> {
    if settings.database_url.is_none() {
        bail!("{what} runs on PostgreSQL: give --database-url (or WRIT_DATABASE_URL); `writ serve` is the embedded single process");
    }
    if !settings.issuer_given && what != "the projector" {
        bail!("{what} needs --issuer (or WRIT_ISSUER): every process behind the load balancer must write the same issuer into tokens");
    }
    Ok(())
}

pub async fn command_api(settings: Settings) -> anyhow::Result<()> {
    check(&settings, "the command API")?;
    let (listener, settings) = serve::bind(settings).await?;
    let context = Context::open(settings).await?;
    let keys = serve::signing_keys(&context, true).await?;
    let throttle = serve::throttle(&context.settings);
    let app = serve::command_router(&context, &keys, &throttle)
        .await?
        .merge(writ_edge::health::router(context.store.clone()));
    let registry = Registry::new(context.store.metrics_handle());
    serve::serve_http(listener, &context, app, registry).await?;
    tracing::info!("command API stopped");
    Ok(())
}

pub async fn query_api(settings: Settings) -> anyhow::Result<()> {
    check(&settings, "the query API")?;
    let (listener, settings) = serve::bind(settings).await?;
    let context = Context::open(settings).await?;
    let keys = serve::signing_keys(&context, false).await?;
    let throttle = serve::throttle(&context.settings);
    let app = serve::query_router(&context, &keys, &throttle);
    let registry = Registry::new(context.store.metrics_handle());
    serve::serve_http(listener, &context, app, registry).await?;
    tracing::info!("query API stopped");
    Ok(())
}

/// The projector, with `/healthz`, `/readyz` and `/metrics` on `--listen`.
pub async fn projector(settings: Settings) -> anyhow::Result<()> {
    check(&settings, "the projector")?;
    let (listener, settings) = serve::bind(settings).await?;
    let context = Context::open(settings).await?;
    let projector = serve::projector(&context).await?;
    let mut registry = Registry::new(context.store.metrics_handle()).with(projector.metrics());
    let (stop, stopped) = watch::channel(false);
    let publisher = match serve::publisher(&context).await? {
        Some(publisher) => {
            registry = registry.with(publisher.metrics());
            Some(tokio::spawn(publisher.run_until_stopped(stopped.clone())))
        }
        None => None,
    };
    let keys = serve::signing_keys(&context, false).await?;
    let deliverer = serve::deliverer(&context, &keys);
    registry = registry.with(deliverer.metrics());
    let deliverer = tokio::spawn(deliverer.run_until_stopped(stopped.clone()));
    let pusher = serve::pusher(&context, &keys);
    registry = registry.with(pusher.metrics());
    let pusher = tokio::spawn(pusher.run_until_stopped(stopped.clone(), serve::PUSH_TICK));
    let sealer = tokio::spawn(serve::seal_periodically(&context, stopped.clone()));
    let running = tokio::spawn(projector.run_until_stopped(stopped));
    let app = writ_edge::health::router(context.store.clone());
    serve::serve_http(listener, &context, app, registry).await?;
    let _ = stop.send(true);
    let _ = running.await;
    let _ = sealer.await;
    let _ = deliverer.await;
    let _ = pusher.await;
    if let Some(publisher) = publisher {
        let _ = publisher.await;
    }
    tracing::info!("projector stopped");
    Ok(())
}
