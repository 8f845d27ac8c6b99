//! What the demo's two services share.

/// Resolves on SIGTERM (what the start script sends) or Ctrl-C.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// Writ's discovery document (OpenID Connect Discovery 1.0), where both
/// services learn the issuer and Writ's endpoints. In a split deployment
/// the query API serves it, with the command API's token endpoint.
pub async fn discover(http: &reqwest::Client, url: &str) -> anyhow::Result<Discovery> {
    use anyhow::Context;
    let document: serde_json::Value = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("cannot read Writ's discovery document at {url}"))?
        .json()
        .await
        .with_context(|| format!("{url} is not a discovery document"))?;
    let field = |name: &str| {
        document[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the discovery document at {url} has no {name}"))
    };
    Ok(Discovery {
        issuer: field("issuer")?,
        token_endpoint: field("token_endpoint")?,
        jwks_uri: field("jwks_uri")?,
    })
}

pub struct Discovery {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

pub const DEFAULT_DISCOVERY: &str = "http://127.0.0.1:9001/.well-known/openid-configuration";
