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
    let back = Browser::new(&server).code_flow(&params, "alice").await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
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
    assert_eq!(
        audience(&api, &web, &exchanged.field("access_token")).await,
        json!([A])
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
    assert_eq!(
        audience(&api, &web, &narrowed.field("access_token")).await,
        json!([B])
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
    strict.stop();
    let refusal = deployment
        .writ(&["serve", "--allowed-resource", "not a uri"])
        .refused();
    assert!(refusal.contains("allowed_resources"), "{refusal}");
}
