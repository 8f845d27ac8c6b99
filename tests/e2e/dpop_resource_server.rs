//! `writ-resource-server` with DPoP-bound tokens (RFC 9449 §7): an axum
//! API behind its `Authenticated` extractor accepts a bound token only
//! under the `DPoP` scheme with a fresh proof by its key, for this request
//! and this token, once; JWTs are checked locally and opaque tokens by
//! introspection, whose `cnf` names the key. Every refusal carries a
//! `DPoP` challenge.

use axum::routing::get;
use axum::Router;
use writ_resource_server::{Authenticated, Config, Introspection, ResourceServer};

use crate::dpop::{post_with_proof, Key};
use crate::harness::{Backend, Deployment};
use crate::oauth::{self, Api, Reply};

writ_testing::on_both_backends!(the_resource_server_crate_verifies_dpop_bound_tokens,);

const RESOURCE: &str = "https://api.example/";

async fn whoami(token: Authenticated) -> String {
    token.0.client_id.unwrap_or_default()
}

/// The API on a port of its own; its public URL is that address.
async fn api_on_a_port(mut config: Config) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let base = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    config.public_url = Some(base.clone());
    // Nested, as APIs often are: `htu` names the whole path.
    let app = Router::new()
        .nest("/v1", Router::new().route("/whoami", get(whoami)))
        .with_state(ResourceServer::new(config));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn call(
    http: &reqwest::Client,
    url: &str,
    authorization: &str,
    proof: Option<&str>,
) -> Reply {
    let mut request = http.get(url).header("authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    Api::reply(request).await
}

fn refused_with(reply: &Reply, error: &str) -> bool {
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    reply.status == 401
        && challenge.starts_with("DPoP ")
        && challenge.contains(&format!("error=\"{error}\""))
}

async fn the_resource_server_crate_verifies_dpop_bound_tokens(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = oauth::client(
        &deployment,
        &["--grant-type", "client_credentials", "--audience", RESOURCE],
    );
    let opaque_app = oauth::client(
        &deployment,
        &[
            "--grant-type",
            "client_credentials",
            "--audience",
            RESOURCE,
            "--token-format",
            "opaque",
        ],
    );
    let introspector = oauth::client(&deployment, &["--resource", RESOURCE]);
    let writ = deployment.serve();
    let api = Api::new(&writ);
    let key = Key::new();
    let cc = [("grant_type", "client_credentials"), ("resource", RESOURCE)];
    let issue = |creds| {
        let proof = key.proof("POST", &writ.url("/token"), None);
        let api = &api;
        async move {
            let reply = post_with_proof(api, "/token", creds, Some(&proof), &cc).await;
            assert_eq!(reply.field("token_type"), "DPoP", "{}", reply.body);
            reply.field("access_token")
        }
    };
    let jwt = issue(&app).await;
    let opaque = issue(&opaque_app).await;
    let bearer = api.token(&app, &cc).await.field("access_token");

    let mut config = Config::new(api.base.clone(), RESOURCE);
    config.introspection = Some(Introspection {
        url: api.url("/introspect"),
        client_id: introspector.id.clone(),
        client_secret: introspector.secret.clone(),
    });
    let base = api_on_a_port(config).await;
    let url = format!("{base}/v1/whoami");
    let http = reqwest::Client::new();

    for (token, owner) in [(&jwt, &app.id), (&opaque, &opaque_app.id)] {
        let as_bearer = call(&http, &url, &format!("Bearer {token}"), None).await;
        assert!(
            refused_with(&as_bearer, "invalid_token"),
            "{:?}",
            as_bearer.headers
        );
        let dpop = format!("DPoP {token}");
        let without = call(&http, &url, &dpop, None).await;
        assert!(
            refused_with(&without, "invalid_dpop_proof"),
            "{:?}",
            without.headers
        );
        for (bad, why) in [
            (key.proof("GET", &url, Some("another token")), "wrong ath"),
            (key.proof("GET", &url, None), "no ath"),
            (Key::new().proof("GET", &url, Some(token)), "another key"),
            (
                key.proof("GET", &format!("{base}/other"), Some(token)),
                "wrong htu",
            ),
            (key.proof("DELETE", &url, Some(token)), "wrong htm"),
        ] {
            let refused = call(&http, &url, &dpop, Some(&bad)).await;
            assert!(
                refused_with(&refused, "invalid_dpop_proof"),
                "{why}: {:?}",
                refused.headers
            );
        }
        let good = key.proof("GET", &format!("{url}?page=2"), Some(token));
        let answered = call(&http, &format!("{url}?page=2"), &dpop, Some(&good)).await;
        assert_eq!(answered.status, 200, "{:?}", answered.headers);
        let replayed = call(&http, &format!("{url}?page=2"), &dpop, Some(&good)).await;
        assert!(
            refused_with(&replayed, "invalid_dpop_proof"),
            "a proof is used once"
        );
        let body = http
            .get(&url)
            .header("authorization", &dpop)
            .header("dpop", key.proof("GET", &url, Some(token)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
            .await
            .unwrap_or_default();
        assert_eq!(&body, owner);
    }

    let proof = key.proof("GET", &url, Some(&bearer));
    let unbound = call(&http, &url, &format!("DPoP {bearer}"), Some(&proof)).await;
    assert!(
        refused_with(&unbound, "invalid_token"),
        "a bearer token is not DPoP's"
    );
    let plain = call(&http, &url, &format!("Bearer {bearer}"), None).await;
    assert_eq!(plain.status, 200, "bearer tokens work as before");
}
