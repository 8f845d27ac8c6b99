//! `/openapi.json`: each process describes the routes it serves. Checked
//! against the running router both ways it can be: every described route
//! answers (a route the router lacks would be 404 or 405), and every
//! endpoint discovery advertises is described.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::{Backend, Deployment, Server};
use crate::split;

async fn document(server: &Server) -> Value {
    let response = reqwest::get(server.url("/openapi.json"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(document["openapi"], "3.1.0");
    document
}

/// Every (method, path) the document describes.
fn operations(document: &Value) -> Vec<(String, String)> {
    let paths = document["paths"].as_object().cloned().unwrap_or_default();
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item[method].is_object() {
                operations.push((method.to_owned(), path.clone()));
            }
        }
    }
    operations
}

fn paths(document: &Value) -> BTreeSet<String> {
    operations(document)
        .into_iter()
        .map(|(_, path)| path)
        .collect()
}

/// The status a bare request (no credentials, empty form) gets; a route's
/// own 404 for a resource it does not hold (its JSON `error`) reads as 200,
/// so only the router's bare 404 means no route.
async fn probe(server: &Server, method: &str, path: &str) -> u16 {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let url = server.url(path);
    let request = match method {
        "get" => client.get(url),
        "post" => client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(""),
        "put" => client.put(url).json(&serde_json::json!({})),
        "patch" => client.patch(url).json(&serde_json::json!({})),
        "delete" => client.delete(url),
        other => panic!("no probe for {other}"),
    };
    let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    match (status, body["error"].as_str()) {
        (404, Some("not_found")) => 200,
        _ => status,
    }
}

#[tokio::test]
async fn every_route_writ_serve_serves_is_described_and_answers() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let writ = deployment.serve_with(&[
        "--audit-token",
        "an-audit-token-for-this-test-only-0123456789",
        "--registration-token",
        "an-initial-access-token-for-this-test-only",
    ]);
    let document = document(&writ).await;
    let operations = operations(&document);
    assert!(operations.len() >= 30, "{operations:?}");
    for (method, path) in &operations {
        let status = probe(&writ, method, path).await;
        assert!(
            status != 404 && status != 405,
            "{method} {path} is described but the router answers {status}"
        );
        let operation = &document["paths"][path][method];
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{method} {path} describes no response"
        );
        assert!(
            operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{method} {path} has no tag"
        );
    }
    // The probe can fail: a route that is not there is told apart.
    assert_eq!(probe(&writ, "get", "/not-a-route").await, 404);
    assert_eq!(probe(&writ, "post", "/jwks").await, 405);

    let discovery: Value = reqwest::get(writ.url("/.well-known/openid-configuration"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let issuer = discovery["issuer"].as_str().unwrap_or_default().to_owned();
    let described = paths(&document);
    let mut advertised = 0;
    for (name, value) in discovery.as_object().cloned().unwrap_or_default() {
        let Some(url) = value.as_str() else { continue };
        if !(name.ends_with("_endpoint") || name == "jwks_uri") {
            continue;
        }
        let path = url.strip_prefix(&issuer).unwrap_or(url);
        assert!(described.contains(path), "{name} ({path}) is not described");
        advertised += 1;
    }
    assert!(advertised >= 8, "{discovery}");

    let schemes = &document["components"]["securitySchemes"];
    for (method, path) in &operations {
        for requirement in document["paths"][path][method]["security"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for scheme in requirement
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                assert!(
                    schemes[scheme].is_object(),
                    "{method} {path} names {scheme}"
                );
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn each_process_of_the_split_deployment_describes_its_own_routes() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let command = split::start(&deployment, "command-api", &[]);
    let query = split::start(&deployment, "query-api", &[]);
    let projector = split::start(&deployment, "projector", &[]);
    let (command, query, projector) = (
        paths(&document(&command).await),
        paths(&document(&query).await),
        paths(&document(&projector).await),
    );
    for own in ["/token", "/revoke", "/register", "/authorize", "/login"] {
        assert!(command.contains(own) && !query.contains(own), "{own}");
    }
    for own in [
        "/introspect",
        "/userinfo",
        "/jwks",
        "/revocations",
        "/audit/grants",
    ] {
        assert!(query.contains(own) && !command.contains(own), "{own}");
    }
    let operations: BTreeSet<String> = ["/healthz", "/readyz", "/metrics", "/openapi.json"]
        .map(str::to_owned)
        .into();
    for paths in [&command, &query] {
        assert!(paths.is_superset(&operations), "{paths:?}");
    }
    assert_eq!(projector, operations);
}
