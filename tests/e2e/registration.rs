//! Dynamic client registration (RFC 7591) behind the initial access token,
//! with the CLI's checks (R5); the discovery documents (R15).

use serde_json::{json, Value};

use crate::harness::{Backend, Deployment};
use crate::oauth::{Api, Creds};

writ_testing::on_both_backends!(
    registration_needs_the_initial_token_and_refuses_dangerous_redirect_uris,
    discovery_lists_every_endpoint_in_both_documents,
);

const INITIAL: &str = "initial-access-token-for-tests-0123";

async fn register(api: &Api, token: Option<&str>, metadata: Value) -> (u16, Value) {
    let mut request = api.http.post(api.url("/register")).json(&metadata);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let reply = Api::reply(request).await;
    (reply.status.as_u16(), reply.body)
}

async fn registration_needs_the_initial_token_and_refuses_dangerous_redirect_uris(
    backend: Backend,
) {
    let deployment = Deployment::with_keys(backend).await;
    let closed = deployment.serve();
    let (status, _) = register(&Api::new(&closed), Some(INITIAL), json!({})).await;
    assert_eq!(status, 403, "registration is off unless configured");
    closed.stop();

    let server = deployment.serve_with(&["--registration-token", INITIAL]);
    let api = Api::new(&server);
    let before = deployment.event_count().await;
    // No token: the bare challenge, no error code (RFC 6750 §3.1).
    let (status, body) = register(&api, None, json!({"client_name": "x"})).await;
    assert_eq!((status, body.get("error")), (401, None), "{body}");
    let (status, body) = register(&api, Some("wrong"), json!({"client_name": "x"})).await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("invalid_token"))
    );
    let dangerous = [
        "https://app.example/cb#fragment",
        "javascript:alert(1)",
        "data:text/html,hi",
        "vbscript:msgbox",
        "http://app.example/cb",
        "http://localhost:80@evil.example/cb",
        "/relative/path",
    ];
    for uri in dangerous {
        let (status, body) = register(&api, Some(INITIAL), json!({"redirect_uris": [uri]})).await;
        assert_eq!(status, 400, "R5: {uri}");
        assert_eq!(body["error"], "invalid_redirect_uri", "R5: {uri}");
    }
    for metadata in [
        json!({"grant_types": ["password"]}),
        json!({"token_endpoint_auth_method": "private_key_jwt"}),
        json!({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}),
        json!({"response_types": ["token"], "redirect_uris": ["https://app.example/cb"]}),
        json!(["not", "an", "object"]),
        json!({"token_endpoint_auth_method": "none", "redirect_uris": ["https://app.example/cb"], "revocation_feed": true}),
        json!({"revocation_feed": "yes"}),
        // RFC 8707 §2: resources are absolute URIs without a fragment.
        json!({"resources": ["https://api.example/#part"]}),
        json!({"resources": ["api.example"]}),
        json!({"resources": "https://api.example/"}),
        json!({"resources": [1]}),
        json!({"token_endpoint_auth_method": "none", "redirect_uris": ["https://app.example/cb"], "resources": ["https://api.example/"]}),
    ] {
        let (status, body) = register(&api, Some(INITIAL), metadata.clone()).await;
        assert_eq!(status, 400, "{metadata}");
        assert_eq!(body["error"], "invalid_client_metadata", "{metadata}");
    }
    assert_eq!(
        deployment.event_count().await,
        before,
        "refusals record nothing"
    );

    let (status, web) = register(
        &api,
        Some(INITIAL),
        json!({"client_name": "web app", "redirect_uris": ["https://app.example/cb"], "scope": "openid profile", "unknown_field": 1}),
    )
    .await;
    assert_eq!(status, 201, "{web}");
    assert_eq!(
        web["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(web["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(web["revocation_feed"], json!(false), "off unless asked for");
    let (status, service) = register(
        &api,
        Some(INITIAL),
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post", "revocation_feed": true}),
    )
    .await;
    assert_eq!(status, 201, "{service}");
    assert_eq!(service["revocation_feed"], json!(true), "{service}");
    let creds = Creds {
        id: service["client_id"].as_str().unwrap_or_default().into(),
        secret: service["client_secret"].as_str().unwrap_or_default().into(),
    };
    assert!(creds.secret.len() >= 43, "256-bit secrets");
    let token = api.client_credentials(&creds).await;
    assert!(
        api.is_active(&creds, &token).await,
        "a registered client works at once"
    );
    let shown = deployment
        .writ(&["--json", "client", "show", &creds.id])
        .success()
        .json();
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["revocation_feed"], json!(true));
    assert_eq!(shown["resources"], json!([]));

    let (status, api_server) = register(
        &api,
        Some(INITIAL),
        json!({"client_name": "api", "resources": ["https://api.example/", "urn:example:api"]}),
    )
    .await;
    assert_eq!(status, 201, "{api_server}");
    let both = json!(["https://api.example/", "urn:example:api"]);
    assert_eq!(api_server["resources"], both);
    let id = api_server["client_id"].as_str().unwrap_or_default();
    let shown = deployment
        .writ(&["--json", "client", "show", id])
        .success()
        .json();
    assert_eq!(shown["resources"], both, "recorded, not only echoed");
}

async fn discovery_lists_every_endpoint_in_both_documents(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let server = deployment.serve_with(&["--registration-token", INITIAL]);
    let api = Api::new(&server);
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let document: Value = api
            .http
            .get(api.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(document["issuer"], api.base.as_str(), "{path}");
        for endpoint in [
            "authorization_endpoint",
            "end_session_endpoint",
            "token_endpoint",
            "jwks_uri",
            "revocation_endpoint",
            "introspection_endpoint",
            "userinfo_endpoint",
            "registration_endpoint",
        ] {
            let url = document[endpoint].as_str().unwrap_or_default();
            assert!(url.starts_with(&api.base), "{path}: {endpoint} = {url:?}");
        }
        assert_eq!(
            document["code_challenge_methods_supported"],
            json!(["S256"]),
            "R15"
        );
        assert_eq!(
            document["authorization_response_iss_parameter_supported"],
            json!(true),
            "R22"
        );
        assert_eq!(document["response_types_supported"], json!(["code"]), "R41");
        assert_eq!(
            document["id_token_signing_alg_values_supported"],
            json!(["RS256", "ES256", "EdDSA"]),
            "R50: never none"
        );
        let jwks = api
            .http
            .get(document["jwks_uri"].as_str().unwrap_or_default())
            .send()
            .await;
        assert_eq!(jwks.map(|r| r.status().as_u16()).unwrap_or(0), 200);
    }
}
