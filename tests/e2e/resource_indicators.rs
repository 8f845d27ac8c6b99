//! RFC 8707 resource indicators against the real binary: any absolute URI
//! by default, restricted by a client's audience or the server's
//! `allowed_resources`; a code exchange or refresh may narrow a token to
//! fewer of the granted resources, never to one not granted, and
//! introspection reports each token's own audience.

use serde_json::{json, Value};

use crate::browser::{self, Browser, REDIRECT_URI, VERIFIER};
use crate::harness::{Backend, Deployment};
use crate::oauth::{self, Api};

writ_testing::on_both_backends!(
    resources_are_open_by_default_restricted_by_setting_and_narrowed_per_token,
);

const A: &str = "https://a.example/api";
const B: &str = "https://b.example/api";

async fn audience(api: &Api, caller: &oauth::Creds, token: &str) -> Value {
    let answer = api.introspect(caller, token).await;
    assert_eq!(answer["active"], true, "{answer}");
    answer["aud"].clone()
}

async fn resources_are_open_by_default_restricted_by_setting_and_narrowed_per_token(
    backend: Backend,
) {
    let deployment = Deployment::with_keys(backend).await;
    let service = oauth::client(&deployment, &["--grant-type", "client_credentials"]);
    let web = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "alice");
    let server = deployment.serve();
    let api = Api::new(&server);

    // Open by default: any absolute URI, and the token is for it alone.
    let reply = api
        .token(
            &service,
            &[("grant_type", "client_credentials"), ("resource", A)],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        audience(&api, &service, &reply.field("access_token")).await,
        json!([A])
    );

    // A code for two resources; each token may be for fewer of them.
    let mut params = browser::oidc_params(&web.id, "ri");
    params.extend([("resource", A), ("resource", B)]);
    let person = Browser::new(&server);
    let back = person.code_flow(&params, "alice").await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    // Resources the client chose itself are shown, and a remembered
    // consent does not cover them; without them it does.
    let again = person.authorize(&params).await;
    assert!(
        again.is_consent(),
        "asked again: {} {}",
        again.status,
        again.html
    );
    assert!(
        again.html.contains(A) && again.html.contains(B),
        "the resources are named"
    );
    let plain = person
        .authorize(&browser::oidc_params(&web.id, "plain"))
        .await;
    assert!(
        plain.redirect_query(REDIRECT_URI).contains_key("code"),
        "the remembered consent covers a request without resources"
    );
    let exchanged = api
        .token(
            &web,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
                ("resource", A),
            ],
        )
        .await;
    assert_eq!(exchanged.status, 200, "{}", exchanged.body);
    let for_a = exchanged.field("access_token");
    assert_eq!(audience(&api, &web, &for_a).await, json!([A]));
    assert_eq!(
        jwt_audience(&for_a),
        json!([A]),
        "the JWT says what was recorded"
    );
    let refresh = exchanged.field("refresh_token");
    let narrowed = api
        .token(
            &web,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("resource", B),
            ],
        )
        .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.body);
    let for_b = narrowed.field("access_token");
    assert_eq!(audience(&api, &web, &for_b).await, json!([B]));
    assert_eq!(jwt_audience(&for_b), json!([B]));
    // A resource server for A sees the token for A, not the one for B.
    let server_a = oauth::client(
        &deployment,
        &["--grant-type", "client_credentials", "--resource", A],
    );
    assert!(api.is_active(&server_a, &for_a).await);
    assert!(
        !api.is_active(&server_a, &for_b).await,
        "narrowed away from A"
    );
    let refresh = narrowed.field("refresh_token");

    let before = deployment.event_count().await;
    for (what, resource) in [
        ("not granted", "https://c.example/api"),
        ("malformed", "c.example"),
    ] {
        let refused = api
            .token(
                &web,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &refresh),
                    ("resource", resource),
                ],
            )
            .await;
        assert_eq!(
            (refused.status.as_u16(), refused.error()),
            (400, "invalid_target"),
            "{what}: {}",
            refused.body
        );
    }
    assert_eq!(
        deployment.event_count().await,
        before,
        "a refused narrowing records nothing"
    );
    let whole = api.refresh(&web, &refresh).await;
    assert_eq!(
        whole.status, 200,
        "the refresh token survived the refusals: {}",
        whole.body
    );
    assert_eq!(
        audience(&api, &web, &whole.field("access_token")).await,
        json!([A, B]),
        "without resource, the grant's audience"
    );
    server.stop();

    // The server's allowed_resources restricts every client.
    let strict = deployment.serve_with(&["--allowed-resource", B]);
    let api = Api::new(&strict);
    let refused = api
        .token(
            &service,
            &[("grant_type", "client_credentials"), ("resource", A)],
        )
        .await;
    assert_eq!(
        (refused.status.as_u16(), refused.error()),
        (400, "invalid_target")
    );
    let allowed = api
        .token(
            &service,
            &[("grant_type", "client_credentials"), ("resource", B)],
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let mut outside = browser::oidc_params(&web.id, "st");
    outside.push(("resource", A));
    let query = Browser::new(&strict)
        .authorize(&outside)
        .await
        .redirect_query(REDIRECT_URI);
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("invalid_target")
    );
    strict.stop();
    let refusal = deployment
        .writ(&["serve", "--allowed-resource", "not a uri"])
        .refused();
    assert!(refusal.contains("allowed_resources"), "{refusal}");
}

/// The `aud` claim of a JWT access token, as an array (RFC 7519 allows a
/// single string).
fn jwt_audience(token: &str) -> Value {
    use base64::Engine;
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|part| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .unwrap_or_default();
    match &claims["aud"] {
        Value::String(one) => json!([one]),
        other => other.clone(),
    }
}
