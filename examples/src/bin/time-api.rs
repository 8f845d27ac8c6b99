//! The demo's resource server: `GET /current_time` (scope `time:read`) and
//! `GET /epoch_time` (scope `epoch:read`), accepting Writ's JWT access
//! tokens without calling Writ. Revocations arrive over Kafka and reject a
//! token the moment they are read. `GET /status` shows how far the
//! revocation feed has read and that Writ was never asked about a token.

use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde_json::{json, Value};
use writ_resource_server::{feed, Authenticated, Config, Rejection, ResourceServer};

#[derive(Parser)]
struct Args {
    #[arg(long, env = "TIME_API_LISTEN", default_value = "127.0.0.1:9100")]
    listen: String,
    /// Where the issuer and its JWKS are learnt.
    #[arg(long, env = "WRIT_DISCOVERY_URL", default_value = writ_examples::DEFAULT_DISCOVERY)]
    discovery_url: String,
    /// This API's name in the tokens' `aud`.
    #[arg(long, env = "TIME_API_AUDIENCE", default_value = "time-api")]
    audience: String,
    #[arg(long, env = "WRIT_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    kafka_brokers: String,
    #[arg(long, env = "WRIT_KAFKA_TOPIC", default_value = writ_infra::kafka::DEFAULT_TOPIC)]
    kafka_topic: String,
}

async fn current_time(token: Authenticated) -> Result<String, Rejection> {
    token.require_scope("time:read")?;
    Ok(format!("{}\n", chrono::Utc::now().to_rfc3339()))
}

async fn epoch_time(token: Authenticated) -> Result<String, Rejection> {
    token.require_scope("epoch:read")?;
    Ok(format!("{}\n", chrono::Utc::now().timestamp()))
}

async fn status(State(server): State<ResourceServer>) -> Json<Value> {
    let (cursor, applied_at) = server.lag();
    Json(json!({
        "ready": server.is_ready(),
        "revocations_applied": server.messages_applied(),
        "deny_list_entries": server.denied_entries(),
        "introspection_calls": server.introspection_calls(),
        "last_cursor": cursor,
        "last_applied_at": applied_at,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    writ_examples::init_logging();
    let args = Args::parse();
    let writ = writ_examples::discover(&reqwest::Client::new(), &args.discovery_url).await?;
    let mut config = Config::new(writ.issuer, &args.audience);
    config.jwks_url = writ.jwks_uri;
    let server = ResourceServer::new(config);
    let brokers = args.kafka_brokers.clone();
    let kafka = feed::KafkaSource::new(&args.kafka_brokers, args.kafka_topic);
    tokio::spawn(feed::follow_kafka(
        server.clone(),
        kafka,
        "writ-demo-time-api".into(),
    ));
    // Until the feed has read what the topic held at start, a revoked
    // token could pass: the port opens only after.
    tracing::info!(%brokers, "reading the revocation topic");
    tokio::time::timeout(Duration::from_secs(60), server.caught_up())
        .await
        .context("the revocation topic could not be read within 60 s")?;

    let app = Router::new()
        .route("/current_time", get(current_time))
        .route("/epoch_time", get(epoch_time))
        .route("/status", get(status))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("time-api listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(writ_examples::shutdown_signal())
        .await?;
    Ok(())
}
