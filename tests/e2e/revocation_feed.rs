//! The server-sent-event feed on embedded SQLite, without Kafka, and the
//! resource-server crate's axum extractor in a real HTTP server.

use axum::routing::get;
use axum::Router;
use writ_resource_server::sse::{follow_sse, SseFeed};
use writ_resource_server::{Authenticated, Config, Rejection, ResourceServer};

use crate::harness::{eventually, Backend, Deployment, Server};
use crate::oauth::{self, Api, Creds};

pub const ISSUER: &str = "http://writ.test";

pub async fn sse_resource_server(writ: &Server, reader: &Creds) -> ResourceServer {
    let mut config = Config::new(ISSUER, &reader.id);
    config.jwks_url = writ.url("/jwks");
    let server = ResourceServer::new(config);
    tokio::spawn(follow_sse(
        server.clone(),
        SseFeed {
            url: writ.url("/revocations"),
            client_id: reader.id.clone(),
            client_secret: reader.secret.clone(),
        },
    ));
    tokio::time::timeout(std::time::Duration::from_secs(30), server.caught_up())
        .await
        .unwrap_or_else(|_| panic!("the feed never said it caught up"));
    server
}

async fn current_time(token: Authenticated) -> Result<String, Rejection> {
    token.require_scope("time:read")?;
    Ok(chrono::Utc::now().to_rfc3339())
}

/// The resource server's API on a port of its own.
async fn api_on_a_port(server: ResourceServer) -> String {
    let app = Router::new()
        .route("/current_time", get(current_time))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

#[tokio::test]
async fn the_feed_carries_revocations_to_a_resource_server_without_kafka() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let reader = oauth::client(&deployment, &["--revocation-feed"]);
    let service = oauth::client(
        &deployment,
        &["--audience", &reader.id, "--scope", "time:read other"],
    );
    let writ = deployment.serve_with(&["--issuer", ISSUER]);
    let api = Api::new(&writ);
    let server = sse_resource_server(&writ, &reader).await;

    let token = api.client_credentials(&service).await;
    assert!(server.authenticate(&token).await.is_ok());
    assert_eq!(api.revoke(&service, &token).await.status, 200);
    eventually("the feed to deliver the revocation", || async {
        server.authenticate(&token).await.is_err().then_some(())
    })
    .await;
    assert_eq!(server.introspection_calls(), 0);

    let anonymous = api.http.get(api.url("/revocations")).send().await;
    assert_eq!(anonymous.map(|r| r.status().as_u16()).ok(), Some(401));
    let garbled = api
        .http
        .get(api.url("/revocations?after=not-a-cursor"))
        .basic_auth(&reader.id, Some(&reader.secret))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(garbled.status().as_u16(), 400);
}

#[tokio::test]
async fn the_extractor_answers_with_rfc_6750_errors() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let reader = oauth::client(&deployment, &["--revocation-feed"]);
    let service = oauth::client(
        &deployment,
        &["--audience", &reader.id, "--scope", "time:read epoch:read"],
    );
    let writ = deployment.serve_with(&["--issuer", ISSUER]);
    let api = Api::new(&writ);
    let base = api_on_a_port(sse_resource_server(&writ, &reader).await).await;
    let http = reqwest::Client::new();
    let call = |token: Option<String>| {
        let (http, url) = (http.clone(), format!("{base}/current_time"));
        async move {
            let mut request = http.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (response.status().as_u16(), challenge)
        }
    };

    let (status, challenge) = call(None).await;
    assert_eq!(
        (status, challenge.as_str()),
        (401, "Bearer realm=\"api\""),
        "no token: no error code (RFC 6750 §3.1)"
    );
    let (status, challenge) = call(Some("garbage".into())).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    let narrow = api
        .token(
            &service,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "epoch:read"),
            ],
        )
        .await
        .field("access_token");
    let (status, challenge) = call(Some(narrow)).await;
    assert_eq!(status, 403);
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"time:read\""),
        "{challenge}"
    );

    let token = api
        .token(
            &service,
            &[("grant_type", "client_credentials"), ("scope", "time:read")],
        )
        .await
        .field("access_token");
    assert_eq!(call(Some(token.clone())).await.0, 200);
    assert_eq!(api.revoke(&service, &token).await.status, 200);
    eventually("the revoked token to be refused", || async {
        let (status, challenge) = call(Some(token.clone())).await;
        (status == 401 && challenge.contains("invalid_token")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_jwts_never_are() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let reader = oauth::client(&deployment, &["--revocation-feed"]);
    let opaque = oauth::client(
        &deployment,
        &["--audience", &reader.id, "--token-format", "opaque"],
    );
    let jwt = oauth::client(&deployment, &["--audience", &reader.id]);
    let writ = deployment.serve_with(&["--issuer", ISSUER]);
    let api = Api::new(&writ);
    let mut config = Config::new(ISSUER, &reader.id);
    config.jwks_url = writ.url("/jwks");
    config.introspection = Some(writ_resource_server::Introspection {
        url: writ.url("/introspect"),
        client_id: reader.id.clone(),
        client_secret: reader.secret.clone(),
    });
    let server = ResourceServer::new(config);

    let token = api.client_credentials(&opaque).await;
    let principal = server
        .authenticate(&token)
        .await
        .unwrap_or_else(|e| panic!("an active opaque token: {e:?}"));
    assert_eq!(principal.client_id.as_deref(), Some(opaque.id.as_str()));
    assert_eq!(server.introspection_calls(), 1);
    assert_eq!(api.revoke(&opaque, &token).await.status, 200);
    let refused = server.authenticate(&token).await.err();
    assert_eq!(
        refused.map(|r| r.error()),
        Some(Some("invalid_token")),
        "introspection says inactive at once"
    );

    assert!(server
        .authenticate(&api.client_credentials(&jwt).await)
        .await
        .is_ok());
    assert_eq!(
        server.introspection_calls(),
        2,
        "the JWT was verified locally"
    );
}
