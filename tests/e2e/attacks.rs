//! The checklist's attacks on the token, revocation and introspection
//! endpoints, as raw HTTP. Every refusal is a standards-shaped error, sent
//! fast, and leaves the log exactly as it was.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::harness::{Backend, Deployment};
use crate::oauth::{self, form, Api, Creds, Reply};

writ_testing::on_both_backends!(
    client_authentication_attacks_are_refused_and_record_nothing,
    malformed_token_requests_get_rfc6749_errors_and_record_nothing,
    revocation_and_introspection_keep_to_rfc7009_and_rfc7662,
);

struct Case {
    name: &'static str,
    authorization: Option<String>,
    body: String,
    status: u16,
    error: &'static str,
}

fn basic(raw: &[u8]) -> Option<String> {
    Some(format!("Basic {}", STANDARD.encode(raw)))
}

async fn send(api: &Api, path: &str, case: &Case) -> Reply {
    let mut request = api
        .http
        .post(api.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(case.body.clone());
    if let Some(value) = &case.authorization {
        request = request.header("authorization", value);
    }
    Api::reply(request).await
}

/// RFC 6749 §5.2 shape, R37: JSON, no-store, a clean description.
fn assert_standard_error(case: &str, reply: &Reply) {
    assert_eq!(
        reply.header("cache-control").as_deref(),
        Some("no-store"),
        "{case}"
    );
    assert!(
        reply
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{case}"
    );
    let description = reply.body["error_description"].as_str().unwrap_or("");
    assert!(
        !description.contains(['\r', '\n', '\t', '"', '\\']),
        "{case}: {description}"
    );
}

async fn check_cases(deployment: &Deployment, api: &Api, path: &str, cases: &[Case]) {
    for case in cases {
        let before = deployment.event_count().await;
        let started = Instant::now();
        let reply = send(api, path, case).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{}: slow",
            case.name
        );
        assert_eq!(
            reply.status.as_u16(),
            case.status,
            "{}: {}",
            case.name,
            reply.body
        );
        assert_eq!(reply.error(), case.error, "{}: {}", case.name, reply.body);
        assert_standard_error(case.name, &reply);
        // RFC 6749 §5.2: every 401 challenges, with a real HTTP scheme
        // whichever method failed (client_secret_post and none included).
        if case.status == 401 {
            assert_eq!(
                reply.header("www-authenticate").as_deref(),
                Some("Basic realm=\"writ\""),
                "{}: R32",
                case.name
            );
        }
        assert_eq!(
            deployment.event_count().await,
            before,
            "{}: the log grew",
            case.name
        );
    }
}

async fn client_authentication_attacks_are_refused_and_record_nothing(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let service = oauth::client(&deployment, &["--scope", "read"]);
    let public = oauth::client(
        &deployment,
        &["--public", "--redirect-uri", "https://app.example/cb"],
    );
    let server = deployment.serve_with(&["--auth-failure-limit", "100"]);
    let api = Api::new(&server);
    let cc = form(&[("grant_type", "client_credentials")]);
    let id_secret = |id: &str, secret: &str| basic(format!("{id}:{secret}").as_bytes());
    let with = |extra: &[(&str, &str)]| {
        let mut params = vec![("grant_type", "client_credentials")];
        params.extend_from_slice(extra);
        form(&params)
    };
    let cases = [
        Case {
            name: "R32 wrong secret",
            authorization: id_secret(&service.id, "wrong"),
            body: cc.clone(),
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "R32 wrong secret in the body",
            authorization: None,
            body: with(&[("client_id", &service.id), ("client_secret", "wrong")]),
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "unknown client",
            authorization: id_secret("nobody", "x"),
            body: cc.clone(),
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "R33 bad base64",
            authorization: Some("Basic %%%".into()),
            body: cc.clone(),
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "R33 no colon",
            authorization: basic(service.id.as_bytes()),
            body: cc.clone(),
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "R33 bad UTF-8",
            authorization: basic(&[0xff, 0xfe, b':', b'x']),
            body: cc.clone(),
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "R33 another scheme",
            authorization: Some(format!("Bearer {}", service.secret)),
            body: cc.clone(),
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "R33 two methods",
            authorization: id_secret(&service.id, &service.secret),
            body: with(&[("client_secret", &service.secret)]),
            status: 400,
            error: "invalid_request",
        },
        Case {
            name: "R34 body client_id differs",
            authorization: id_secret(&service.id, &service.secret),
            body: with(&[("client_id", &public.id)]),
            status: 400,
            error: "invalid_request",
        },
        Case {
            name: "no credentials at all",
            authorization: None,
            body: cc.clone(),
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "R36 confidential client without its secret",
            authorization: None,
            body: with(&[("client_id", &service.id)]),
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "R36 public client with client_credentials",
            authorization: None,
            body: with(&[("client_id", &public.id)]),
            status: 400,
            error: "unauthorized_client",
        },
        Case {
            name: "R36 public client with a secret",
            authorization: None,
            body: with(&[("client_id", &public.id), ("client_secret", "made-up")]),
            status: 401,
            error: "invalid_client",
        },
    ];
    check_cases(&deployment, &api, "/token", &cases).await;
    let issued = api
        .token(&service, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        issued.status, 200,
        "the right secret still works: {}",
        issued.body
    );

    // R32, R73: failures are counted and answered with Retry-After past
    // the limit, but a 256-bit secret cannot be guessed, so the right one
    // is never refused: a stranger's failures cannot lock a client out.
    let strict =
        deployment.serve_with(&["--auth-failure-limit", "3", "--auth-failure-window", "1h"]);
    let api = Api::new(&strict);
    let wrong = Creds {
        id: service.id.clone(),
        secret: "wrong".into(),
    };
    for attempt in 0..3 {
        let refused = api
            .token(&wrong, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(refused.status, 401, "attempt {attempt}");
        assert!(refused.header("retry-after").is_none(), "under the limit");
    }
    let before = deployment.event_count().await;
    let over = api
        .token(&wrong, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(over.status, 401, "{}", over.body);
    assert_eq!(over.error(), "invalid_client");
    assert!(over
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Basic")));
    assert!(over
        .header("retry-after")
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|s| s > 0));
    assert_eq!(
        deployment.event_count().await,
        before,
        "a failure records nothing"
    );
    let right = api
        .token(&service, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        right.status, 200,
        "the right secret is never refused: {}",
        right.body
    );
    assert!(deployment.event_count().await > before);
    let other = oauth::client(&deployment, &[]);
    assert_eq!(
        api.token(&other, &[("grant_type", "client_credentials")])
            .await
            .status,
        200,
        "other clients are not throttled"
    );
}

async fn malformed_token_requests_get_rfc6749_errors_and_record_nothing(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let service = oauth::client(
        &deployment,
        &["--scope", "read", "--audience", "https://api.example"],
    );
    let server = deployment.serve();
    let api = Api::new(&server);
    let auth = basic(format!("{}:{}", service.id, service.secret).as_bytes());
    let huge = "a".repeat(2 * 1024 * 1024);
    let pathological = format!("http://[{}]/", ":".repeat(5000));
    let case = |name, body: String, status, error| Case {
        name,
        authorization: auth.clone(),
        body,
        status,
        error,
    };
    let cases = [
        case(
            "missing grant_type",
            form(&[("scope", "read")]),
            400,
            "invalid_request",
        ),
        case(
            "unsupported grant_type",
            form(&[("grant_type", "urn:made:up")]),
            400,
            "unsupported_grant_type",
        ),
        case(
            "R38 duplicate grant_type",
            "grant_type=client_credentials&grant_type=client_credentials".into(),
            400,
            "invalid_request",
        ),
        case(
            "R38 duplicate scope",
            "grant_type=client_credentials&scope=read&scope=read".into(),
            400,
            "invalid_request",
        ),
        case(
            "R47 password grant not enabled",
            form(&[
                ("grant_type", "password"),
                ("username", "a"),
                ("password", "b"),
            ]),
            400,
            "unauthorized_client",
        ),
        case(
            "refresh grant not enabled",
            form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]),
            400,
            "unauthorized_client",
        ),
        case(
            "scope beyond the client's",
            form(&[
                ("grant_type", "client_credentials"),
                ("scope", "read admin"),
            ]),
            400,
            "invalid_scope",
        ),
        case(
            "scope with a forbidden character",
            form(&[("grant_type", "client_credentials"), ("scope", "re\"ad")]),
            400,
            "invalid_scope",
        ),
        case(
            "R63 megabyte parameter",
            format!("grant_type=client_credentials&scope={huge}"),
            413,
            "invalid_request",
        ),
        case(
            "R63 pathological resource URI",
            form(&[
                ("grant_type", "client_credentials"),
                ("resource", &pathological),
            ]),
            400,
            "invalid_target",
        ),
        case(
            "resource with a fragment",
            form(&[
                ("grant_type", "client_credentials"),
                ("resource", "https://api.example#x"),
            ]),
            400,
            "invalid_target",
        ),
        case(
            "invalid percent-encoding and NULs",
            "grant_type=client_credentials%00%ZZ".into(),
            400,
            "unsupported_grant_type",
        ),
    ];
    check_cases(&deployment, &api, "/token", &cases).await;

    // R39: POST form only.
    let before = deployment.event_count().await;
    let get = api
        .http
        .get(api.url("/token?grant_type=client_credentials"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(get.status(), 405);
    let json_body = api
        .http
        .post(api.url("/token"))
        .basic_auth(&service.id, Some(&service.secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json_body.status(), 400);
    assert_eq!(deployment.event_count().await, before);

    // R37, R40, R38 (unknown parameters ignored): the success shape.
    let ok = api
        .token(
            &service,
            &[("grant_type", "client_credentials"), ("made_up", "ignored")],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(ok.field("token_type"), "Bearer");
    let token = ok.field("access_token");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "R40"
    );
}

async fn revocation_and_introspection_keep_to_rfc7009_and_rfc7662(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let resource = "https://api.example";
    let owner = oauth::client(&deployment, &["--audience", resource]);
    let stranger = oauth::client(&deployment, &[]);
    let resource_server = oauth::client(
        &deployment,
        &["--client-id", "rs", "--name", "resource server"],
    );
    let for_rs = oauth::client(&deployment, &["--audience", "rs"]);
    let public = oauth::client(
        &deployment,
        &["--public", "--redirect-uri", "https://app.example/cb"],
    );
    let server = deployment.serve();
    let api = Api::new(&server);
    let token = api.client_credentials(&owner).await;

    // R55: authentication required; inactive answers carry nothing else.
    let anonymous = api
        .post("/introspect", None, form(&[("token", &token)]))
        .await;
    assert_eq!(anonymous.status, 401);
    let public_caller = api
        .post(
            "/introspect",
            None,
            form(&[("token", &token), ("client_id", &public.id)]),
        )
        .await;
    assert_eq!(
        public_caller.status, 401,
        "public clients may not introspect"
    );
    assert_eq!(
        api.introspect(&stranger, &token).await,
        json!({"active": false})
    );
    assert_eq!(
        api.introspect(&owner, "garbage").await,
        json!({"active": false})
    );
    let rs_token = api.client_credentials(&for_rs).await;
    assert_eq!(
        api.introspect(&resource_server, &rs_token).await["active"],
        true,
        "a client in the audience may introspect"
    );
    for forged in forgeries(&token) {
        assert_eq!(
            api.introspect(&owner, &forged).await,
            json!({"active": false})
        );
    }

    // R52: unknown tokens get 200; another client's token is not revoked.
    let before = deployment.event_count().await;
    assert_eq!(api.revoke(&owner, "never-issued").await.status, 200);
    let foreign = api.revoke(&stranger, &token).await;
    assert_eq!(foreign.status, 200);
    assert_eq!(deployment.event_count().await, before);
    assert!(api.is_active(&owner, &token).await);
    let anonymous = api.post("/revoke", None, form(&[("token", &token)])).await;
    assert_eq!(anonymous.status, 401);
    let revoked = api.revoke(&owner, &token).await;
    assert_eq!(revoked.status, 200);
    assert!(revoked.header("writ-cursor").is_some());
    assert_eq!(
        deployment.event_count().await,
        before + 1,
        "one AccessTokenRevoked"
    );
    assert!(!api.is_active(&owner, &token).await);
    let again = api.revoke(&owner, &token).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        deployment.event_count().await,
        before + 1,
        "revoking twice records once"
    );
}

/// A real token with its claims swapped under the old signature, and the
/// same claims with `alg: none` and no signature.
fn forgeries(token: &str) -> [String; 2] {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap_or_default())
            .unwrap_or_default()
    };
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = decode(parts[1]);
    claims["scope"] = json!("admin");
    let mut none = decode(parts[0]);
    none["alg"] = json!("none");
    [
        format!("{}.{}.{}", parts[0], encode(&claims), parts[2]),
        format!("{}.{}.", encode(&none), encode(&claims)),
    ]
}
