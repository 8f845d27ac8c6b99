//! The audit API on the query API: behind its own bearer token, the same
//! answers as `writ audit`, described by its OpenAPI document.

use serde_json::Value;

use crate::harness::{Backend, Deployment};
use crate::oauth::Api;
use crate::refresh::{password_app, user, PASSWORD};

const TOKEN: &str = "an-audit-token-for-this-test-only-0123456789";

async fn get(url: &str, token: Option<&str>) -> (u16, Option<String>, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = response.status().as_u16();
    (status, challenge, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_audit_api_answers_as_the_cli_does_behind_its_token() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let app = password_app(&deployment, &[]);
    user(&deployment, "alice");
    let writ = deployment.serve_with(&["--audit-token", TOKEN]);
    let api = Api::new(&writ);
    let login = api.password(&app, "alice", PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let at = "2100-01-01T00:00:00Z";
    let grants = writ.url(&format!("/audit/grants?subject=alice&as_of={at}"));

    // No token: the bare challenge (RFC 6750 §3.1); a wrong one: invalid_token.
    let (status, challenge, body) = get(&grants, None).await;
    assert_eq!(status, 401);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"writ-audit\""));
    assert!(body.is_empty(), "{body}");
    let (status, challenge, _) = get(&grants, Some("wrong")).await;
    assert_eq!(status, 401);
    assert!(challenge.is_some_and(|c| c.contains("invalid_token")));
    let (status, _, body) = get(&writ.url("/audit/grants"), Some(TOKEN)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("invalid_request") && body.contains("subject"),
        "{body}"
    );
    let (status, _, body) = get(
        &writ.url("/audit/grants?subject=alice&as_of=soon"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A repeated parameter: an RFC 6749 error, and only once authorised.
    let repeated = writ.url("/audit/grants?subject=alice&subject=bob");
    let (status, _, body) = get(&repeated, Some(TOKEN)).await;
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(error["error"], "invalid_request", "{body}");
    assert_eq!(get(&repeated, None).await.0, 401);

    let (status, _, body) = get(&grants, Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let over_http: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    let run = deployment
        .writ(&[
            "--json",
            "audit",
            "grants",
            "--subject",
            "alice",
            "--as-of",
            at,
        ])
        .success();
    let from_cli: Value = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(over_http, from_cli, "the same answer both ways");
    assert_eq!(over_http.as_array().map(Vec::len), Some(1));

    let (status, _, body) = get(&writ.url("/audit/verify"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"intact\":true"), "{body}");
    let (status, _, body) = get(
        &writ.url("/audit/export?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body
        .lines()
        .all(|line| serde_json::from_str::<Value>(line).is_ok()));

    let (status, _, body) = get(&writ.url("/audit/openapi.json"), None).await;
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(document["openapi"], "3.1.0");
    for path in [
        "grants", "consents", "history", "who-can", "export", "verify",
    ] {
        assert!(
            document["paths"][format!("/audit/{path}")].is_object(),
            "{path}"
        );
    }
    // The described rows are the rows answered, key for key.
    let described = |schema: &str| -> Vec<String> {
        let mut keys: Vec<String> = document["components"]["schemas"][schema]["properties"]
            .as_object()
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    let keys = |object: &Value| -> Vec<String> {
        let mut keys: Vec<String> = object
            .as_object()
            .map(|object| object.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    assert_eq!(keys(&over_http[0]), described("Grant"));
    let (_, _, body) = get(&writ.url("/audit/verify"), Some(TOKEN)).await;
    let verification: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keys(&verification), described("Verification"));
    let gid = over_http[0]["gid"].as_str().unwrap_or_default();
    let (_, _, body) = get(
        &writ.url(&format!("/audit/history?grant={gid}")),
        Some(TOKEN),
    )
    .await;
    let history: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert!(history.as_array().is_some_and(|events| !events.is_empty()));
    for event in history.as_array().into_iter().flatten() {
        assert_eq!(keys(event), described("LineageEvent"));
    }
    // A minute on: the grant started within this second.
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, _, body) = get(
        &writ.url(&format!("/audit/who-can?scope=openid&at={soon}")),
        Some(TOKEN),
    )
    .await;
    let holders: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        holders
            .as_array()
            .is_some_and(|holders| !holders.is_empty()),
        "{body}"
    );
    for holder in holders.as_array().into_iter().flatten() {
        assert_eq!(keys(holder), described("Holder"));
    }
}

#[tokio::test]
async fn without_an_audit_token_the_audit_api_does_not_exist() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let writ = deployment.serve();
    let (status, _, _) = get(&writ.url("/audit/grants?subject=alice"), Some(TOKEN)).await;
    assert_eq!(status, 404);
}
