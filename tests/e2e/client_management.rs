//! RFC 7592 client management against the real binary: a client
//! registered through RFC 7591 reads, replaces and deletes its own
//! registration with its registration access token; every refusal records
//! nothing, and a deleted client's tokens stop working.

use serde_json::{json, Value};

use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::{self, Api, Creds, Reply};

writ_testing::on_both_backends!(a_registered_client_reads_replaces_and_deletes_its_registration,);

const INITIAL: &str = "initial-access-token-for-7592-tests";

async fn call(
    api: &Api,
    method: reqwest::Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut request = api.http.request(method, uri);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    Api::reply(request).await
}

async fn register(api: &Api, metadata: Value) -> Value {
    let reply = Api::reply(
        api.http
            .post(api.url("/register"))
            .bearer_auth(INITIAL)
            .json(&metadata),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body
}

fn without(value: &Value, fields: &[&str]) -> Value {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        for field in fields {
            object.remove(*field);
        }
    }
    value
}

async fn a_registered_client_reads_replaces_and_deletes_its_registration(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let server = deployment.serve_with(&["--registration-token", INITIAL]);
    let api = Api::new(&server);
    let metadata =
        json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "api"});
    let registered = register(&api, metadata.clone()).await;
    let other = register(&api, metadata).await;
    let client_id = registered["client_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let uri = registered["registration_client_uri"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(uri, server.url(&format!("/register/{client_id}")));
    let first_token = registered["registration_access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(first_token.len() >= 43, "256 random bits");
    let other_token = other["registration_access_token"]
        .as_str()
        .unwrap_or_default();
    let creds = Creds {
        id: client_id.clone(),
        secret: registered["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };

    let before = deployment.event_count().await;
    let read = call(&api, reqwest::Method::GET, &uri, Some(&first_token), None).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(
        without(&read.body, &["registration_access_token"]),
        without(
            &registered,
            &[
                "client_secret",
                "client_secret_expires_at",
                "registration_access_token"
            ]
        ),
        "GET shows what registration answered, less the secrets"
    );
    assert_eq!(read.header("cache-control").as_deref(), Some("no-store"));
    // RFC 7592 §3: every answer carries a new token; the one shown retires.
    let token = read.body["registration_access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(token.len() >= 43 && token != first_token, "a new token");
    assert_eq!(
        deployment.event_count().await,
        before + 1,
        "the rotation is an event"
    );
    let retired = call(&api, reqwest::Method::GET, &uri, Some(&first_token), None).await;
    assert_eq!(
        (retired.status.as_u16(), retired.error()),
        (401, "invalid_token")
    );
    let before = deployment.event_count().await;
    let bare = call(&api, reqwest::Method::GET, &uri, None, None).await;
    assert_eq!((bare.status.as_u16(), bare.body.get("error")), (401, None));
    assert!(bare
        .header("www-authenticate")
        .unwrap_or_default()
        .starts_with("Bearer"));
    for (what, presented, at) in [
        ("a wrong token", "wrong", uri.clone()),
        ("another client's token", other_token, uri.clone()),
        (
            "a token at another client's URI",
            token.as_str(),
            server.url(&format!(
                "/register/{}",
                other["client_id"].as_str().unwrap_or_default()
            )),
        ),
        (
            "an unknown client",
            token.as_str(),
            server.url("/register/nobody"),
        ),
    ] {
        let reply = call(&api, reqwest::Method::GET, &at, Some(presented), None).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (401, "invalid_token"),
            "{what}"
        );
    }
    assert_eq!(
        deployment.event_count().await,
        before,
        "refused reads record nothing"
    );

    // An administrator narrows the audience; the client's replacement
    // keeps it, as it is not client metadata.
    deployment
        .writ(&[
            "client",
            "update",
            &client_id,
            "--audience",
            "https://rs.example",
        ])
        .success();
    let resource_server = oauth::client(
        &deployment,
        &[
            "--grant-type",
            "client_credentials",
            "--resource",
            "https://rs.example",
        ],
    );
    let access = api.client_credentials(&creds).await;
    assert!(api.is_active(&resource_server, &access).await);

    let before = deployment.event_count().await;
    let sent_back = without(
        &read.body,
        &["registration_client_uri", "client_id_issued_at"],
    );
    let sent_back = without(&sent_back, &["registration_access_token"]);
    let same = call(
        &api,
        reqwest::Method::PUT,
        &uri,
        Some(&token),
        Some(&sent_back),
    )
    .await;
    assert_eq!(
        same.status, 200,
        "what GET returned is accepted: {}",
        same.body
    );
    assert_eq!(
        without(&same.body, &["registration_access_token"]),
        without(&read.body, &["registration_access_token"])
    );
    let token = same.field("registration_access_token");
    assert_eq!(
        deployment.event_count().await,
        before + 1,
        "a replacement that changes nothing records only the new token"
    );
    let mut renamed = sent_back.clone();
    renamed["client_name"] = json!("svc renamed");
    renamed["client_secret"] = json!(creds.secret);
    let changed = call(
        &api,
        reqwest::Method::PUT,
        &uri,
        Some(&token),
        Some(&renamed),
    )
    .await;
    assert_eq!(
        changed.body["client_name"], "svc renamed",
        "{}",
        changed.body
    );
    let token = changed.field("registration_access_token");
    assert_eq!(
        deployment.event_count().await,
        before + 3,
        "a PUT that changes something is an event, and so is its new token"
    );
    let shown = deployment
        .writ(&["--json", "client", "show", &client_id])
        .success()
        .json();
    assert_eq!(shown["client_name"], "svc renamed");
    assert_eq!(shown["audience"], json!(["https://rs.example"]));

    let before = deployment.event_count().await;
    let refusals: Vec<(&str, Value, &str)> = vec![
        (
            "a server field",
            json!({"registration_access_token": token}),
            "invalid_request",
        ),
        (
            "a server field",
            json!({"client_id_issued_at": 1}),
            "invalid_request",
        ),
        (
            "another client_id",
            json!({"client_id": "someone-else"}),
            "invalid_client_metadata",
        ),
        (
            "no client_id",
            json!({"client_id": null}),
            "invalid_client_metadata",
        ),
        (
            "a wrong secret",
            json!({"client_secret": "wrong"}),
            "invalid_client_metadata",
        ),
        (
            "a dangerous redirect URI",
            json!({"redirect_uris": ["javascript:alert(1)"], "grant_types": ["authorization_code"]}),
            "invalid_redirect_uri",
        ),
        (
            "turning public",
            json!({"token_endpoint_auth_method": "none", "grant_types": ["refresh_token"]}),
            "invalid_client_metadata",
        ),
        (
            "the password grant",
            json!({"grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (
            "a wider scope (RFC 7592 §5: an administrator's to give)",
            json!({"scope": "api admin"}),
            "invalid_client_metadata",
        ),
        (
            "another grant",
            json!({"grant_types": ["client_credentials", "authorization_code"], "redirect_uris": ["https://app.example/cb"]}),
            "invalid_client_metadata",
        ),
        (
            "the revocation feed",
            json!({"revocation_feed": true}),
            "invalid_client_metadata",
        ),
        (
            "a resource to introspect for",
            json!({"resources": ["https://other-rs.example"]}),
            "invalid_client_metadata",
        ),
    ];
    for (what, change, error) in refusals {
        let mut body = sent_back.clone();
        for (field, value) in change.as_object().into_iter().flatten() {
            body[field] = value.clone();
        }
        let reply = call(&api, reqwest::Method::PUT, &uri, Some(&token), Some(&body)).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (400, error),
            "{what}: {}",
            reply.body
        );
    }
    assert_eq!(
        deployment.event_count().await,
        before,
        "refused PUTs record nothing"
    );

    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let reply = call(
            &api,
            method.clone(),
            &uri,
            Some(other_token),
            Some(&sent_back),
        )
        .await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (401, "invalid_token"),
            "{method} with another client's token"
        );
    }
    let administered = oauth::client(&deployment, &["--grant-type", "client_credentials"]);
    let cli_uri = server.url(&format!("/register/{}", administered.id));
    let reply = call(&api, reqwest::Method::GET, &cli_uri, Some(&token), None).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (401, "invalid_token"),
        "a client created with the CLI has no registration access token"
    );
    assert_eq!(
        deployment.event_count().await,
        before + 1,
        "only the CLI's registration: refused calls record nothing"
    );
    // Two reads racing with one token: one gets the next token, the other
    // finds it retired.
    let (left, right) = futures::join!(
        call(&api, reqwest::Method::GET, &uri, Some(&token), None),
        call(&api, reqwest::Method::GET, &uri, Some(&token), None)
    );
    let mut statuses = [left.status.as_u16(), right.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "one token, one successor");
    let token = if left.status == 200 { left } else { right }.field("registration_access_token");
    let deleted = call(&api, reqwest::Method::DELETE, &uri, Some(&token), None).await;
    assert_eq!(deleted.status, 204);
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let reply = call(&api, method.clone(), &uri, Some(&token), None).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (401, "invalid_token"),
            "{method} after DELETE"
        );
    }
    assert!(
        !api.is_active(&resource_server, &access).await,
        "a deleted client's token stops working at once"
    );
    assert!(api.try_client_credentials(&creds).await.is_none());
    let other_uri = other["registration_client_uri"]
        .as_str()
        .unwrap_or_default();
    let untouched = call(
        &api,
        reqwest::Method::GET,
        other_uri,
        Some(other_token),
        None,
    )
    .await;
    assert_eq!(untouched.status, 200, "the other client is untouched");
    let other_token = untouched.field("registration_access_token");
    let other_id = other["client_id"].as_str().unwrap_or_default();
    deployment.writ(&["client", "disable", other_id]).success();
    let disabled = call(
        &api,
        reqwest::Method::GET,
        other_uri,
        Some(&other_token),
        None,
    )
    .await;
    assert_eq!(
        (disabled.status.as_u16(), disabled.error()),
        (401, "invalid_token"),
        "a client an administrator disabled"
    );
    eventually("the policy revokes the deleted client's grant", || async {
        let revoked = deployment
            .count(&format!(
                "SELECT count(*) FROM events WHERE event_type = 'GrantRevoked' \
                 AND CAST(payload AS text) LIKE '%{client_id}%'"
            ))
            .await;
        (revoked >= 1).then_some(())
    })
    .await;
}
