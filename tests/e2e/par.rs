//! Pushed authorization requests (RFC 9126) against the real binary: the
//! push, its single-use `request_uri` through sign-in and consent to a
//! code, every refusal `/authorize` would make answered at the push with
//! nothing written, expiry, and clients and servers that require pushing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::browser::{self, Browser, REDIRECT_URI};
use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::{form, Api, Creds, Reply};

writ_testing::on_both_backends!(
    a_pushed_request_leads_to_a_code_once_and_its_parameters_are_the_request,
    the_push_refuses_what_authorize_would_and_writes_nothing,
    a_request_uri_expires_and_the_lifetime_stays_under_ten_minutes,
    pushing_is_required_by_the_client_or_by_the_server,
    two_processes_racing_for_one_request_uri_give_one_sign_in,
    public_clients_pushes_are_counted_per_address,
);

type Params = Vec<(String, String)>;

const PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

async fn push(api: &Api, creds: &Creds, params: &[(&str, &str)]) -> Reply {
    api.post("/par", Some(creds), form(params)).await
}

fn pushed_params<'a>(client_id: &'a str, state: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut params = browser::oidc_params(client_id, state);
    params.push(("login_hint", "alice"));
    params
}

async fn pushed_events(deployment: &Deployment, event_type: &str) -> i64 {
    deployment
        .count(&format!(
            "SELECT count(*) FROM events WHERE aggregate_type = 'PushedRequest' AND event_type = '{event_type}'"
        ))
        .await
}

async fn a_pushed_request_leads_to_a_code_once_and_its_parameters_are_the_request(
    backend: Backend,
) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    let other = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "alice");
    let server = deployment.serve();
    let api = Api::new(&server);

    let reply = push(&api, &app, &pushed_params(&app.id, "st-par")).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["expires_in"], 60, "RFC 9126 §2.2, the default");
    assert_eq!(
        reply.header("cache-control").as_deref(),
        Some("no-store"),
        "RFC 9126 §2.2"
    );
    let request_uri = reply.field("request_uri");
    assert!(request_uri.starts_with(PREFIX), "{request_uri}");
    assert_eq!(
        pushed_events(&deployment, "AuthorizationRequestPushed").await,
        1
    );
    let recorded = deployment
        .count(
            "SELECT count(*) FROM events WHERE event_type = 'AuthorizationRequestPushed' \
             AND CAST(payload AS text) LIKE '%client_secret_basic%' \
             AND CAST(payload AS text) NOT LIKE '%alice%'",
        )
        .await;
    assert_eq!(
        recorded, 1,
        "the push records how the client authenticated, and login_hint only sealed"
    );
    let in_metadata = deployment
        .count(
            "SELECT count(*) FROM events WHERE event_type = 'AuthorizationRequestPushed' \
             AND CAST(metadata AS text) LIKE '%client_auth%client_secret_basic%'",
        )
        .await;
    assert_eq!(in_metadata, 1, "and so does the event's metadata");
    let reference = request_uri.trim_start_matches(PREFIX);
    let leaked = deployment
        .count(&format!(
            "SELECT count(*) FROM events WHERE CAST(payload AS text) LIKE '%{reference}%' \
             OR aggregate_id = '{reference}'"
        ))
        .await;
    assert_eq!(leaked, 0, "the log never holds a usable request_uri");

    // Only client_id and request_uri count at /authorize (RFC 9126 §4):
    // another scope, state, redirect URI, response type, prompt and PKCE
    // challenge here are all ignored.
    let person = Browser::new(&server);
    let authorize = [
        ("client_id", app.id.as_str()),
        ("request_uri", request_uri.as_str()),
        ("scope", "openid"),
        ("state", "not-this-one"),
        ("redirect_uri", "https://attacker.example/cb"),
        ("response_type", "token"),
        ("prompt", "none"),
        (
            "code_challenge",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
    ];
    let login = person.authorize(&authorize).await;
    assert!(login.is_login(), "{} {}", login.status, login.html);
    assert!(
        login.html.contains("value=\"alice\""),
        "the pushed login_hint reaches the page"
    );
    let signed_in = person.sign_in(&login, "alice", browser::PASSWORD).await;
    let consent = person.follow(&signed_in).await;
    assert!(
        consent.html.contains("See your email address"),
        "the pushed scopes are the request's"
    );
    let back = person.decide(&consent, "allow").await;
    let query = back.redirect_query(REDIRECT_URI);
    assert_eq!(query.get("state").map(String::as_str), Some("st-par"));
    // The pushed challenge, not the injected one, binds the code.
    let tokens = browser::redeem(&api, &app, &query["code"]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert!(tokens.body["id_token"].is_string());
    assert_eq!(pushed_events(&deployment, "PushedRequestUsed").await, 1);
    // An auditor finds both events under the client, as the bulk rebuild
    // and the live index both name it.
    let audited = eventually("the audit index names the pushing client", || async {
        let run = deployment.writ(&[
            "audit",
            "export",
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ]);
        let named = run
            .stdout()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| {
                event["aggregate_type"] == "PushedRequest" && event["client_id"] == app.id.as_str()
            })
            .count();
        (named == 2).then_some(named)
    })
    .await;
    assert_eq!(audited, 2);

    // Used once; unknown, foreign and malformed references lead nowhere.
    let before = deployment.event_count().await;
    let again = Browser::new(&server).authorize(&authorize).await;
    again.assert_error_page("a used request_uri");
    let fresh = push(&api, &app, &pushed_params(&app.id, "st-2")).await;
    let fresh_uri = fresh.field("request_uri");
    let after_push = deployment.event_count().await;
    assert_eq!(after_push, before + 1);
    for (client_id, uri) in [
        (other.id.as_str(), fresh_uri.as_str()),
        (app.id.as_str(), &format!("{PREFIX}unknown")),
        (app.id.as_str(), fresh_uri.trim_start_matches(PREFIX)),
        (app.id.as_str(), "https://attacker.example/request.jwt"),
    ] {
        let page = Browser::new(&server)
            .authorize(&[("client_id", client_id), ("request_uri", uri)])
            .await;
        page.assert_error_page(uri);
    }
    assert_eq!(
        deployment.event_count().await,
        after_push,
        "refused request_uris write nothing"
    );
    let own = Browser::new(&server)
        .authorize(&[("client_id", &app.id), ("request_uri", &fresh_uri)])
        .await;
    assert!(own.is_login(), "another client's attempt did not spend it");
}

async fn the_push_refuses_what_authorize_would_and_writes_nothing(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    let server = deployment.serve();
    let api = Api::new(&server);
    let before = deployment.event_count().await;
    let base = pushed_params(&app.id, "st");
    let with = |changes: &[(&'static str, Option<&'static str>)]| -> Params {
        let mut params: Vec<(String, String)> = base
            .iter()
            .filter(|(name, _)| !changes.iter().any(|(changed, _)| changed == name))
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        for (name, value) in changes {
            if let Some(value) = value {
                params.push(((*name).to_owned(), (*value).to_owned()));
            }
        }
        params
    };
    let cases: Vec<(&str, Params, &str)> = vec![
        (
            "no PKCE",
            with(&[("code_challenge", None), ("code_challenge_method", None)]),
            "invalid_request",
        ),
        (
            "plain PKCE",
            with(&[("code_challenge_method", Some("plain"))]),
            "invalid_request",
        ),
        (
            "a request_uri inside",
            with(&[("request_uri", Some("urn:ietf:params:oauth:request_uri:x"))]),
            "invalid_request",
        ),
        (
            "an unregistered redirect_uri",
            with(&[("redirect_uri", Some("http://127.0.0.1:9999/elsewhere"))]),
            "invalid_request",
        ),
        (
            "no redirect_uri with openid",
            with(&[("redirect_uri", None)]),
            "invalid_request",
        ),
        (
            "a scope the client lacks",
            with(&[("scope", Some("openid admin"))]),
            "invalid_scope",
        ),
        (
            "response_type token",
            with(&[("response_type", Some("token"))]),
            "unsupported_response_type",
        ),
        (
            "a malformed resource",
            with(&[("resource", Some("api.example"))]),
            "invalid_target",
        ),
        (
            "an unsigned request object",
            with(&[("request", Some("eyJhbGciOiJub25lIn0.e30."))]),
            "invalid_request_object",
        ),
        (
            "another client's id",
            with(&[("client_id", Some("someone-else"))]),
            "invalid_request",
        ),
        (
            "an unsigned request object alone (RFC 9126 §3)",
            vec![
                ("client_id".to_owned(), app.id.clone()),
                ("request".to_owned(), "eyJhbGciOiJub25lIn0.e30.".to_owned()),
            ],
            "invalid_request_object",
        ),
    ];
    for (what, params, error) in cases {
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let reply = push(&api, &app, &pairs).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (400, error),
            "{what}: {}",
            reply.body
        );
    }
    let wrong = Creds {
        id: app.id.clone(),
        secret: "wrong".into(),
    };
    let reply = push(&api, &wrong, &base).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (401, "invalid_client")
    );
    assert!(reply.header("www-authenticate").is_some());
    assert_eq!(
        deployment.event_count().await,
        before,
        "no refused push is recorded"
    );
}

async fn a_request_uri_expires_and_the_lifetime_stays_under_ten_minutes(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    for ttl in ["10m", "500ms"] {
        let refusal = deployment.writ(&["serve", "--par-ttl", ttl]).refused();
        assert!(refusal.contains("par_ttl"), "{ttl}: {refusal}");
    }
    let app = browser::web_client(&deployment, &[]);
    let server = deployment.serve_with(&["--par-ttl", "1s"]);
    let api = Api::new(&server);
    let reply = push(&api, &app, &pushed_params(&app.id, "st")).await;
    let pushed_by = Instant::now();
    assert_eq!(reply.body["expires_in"], 1, "{}", reply.body);
    let before = deployment.event_count().await;
    // The request_uri's whole configured lifetime has passed by then.
    tokio::time::sleep_until((pushed_by + Duration::from_millis(1200)).into()).await;
    let page = Browser::new(&server)
        .authorize(&[
            ("client_id", &app.id),
            ("request_uri", &reply.field("request_uri")),
        ])
        .await;
    page.assert_error_page("an expired request_uri");
    assert_eq!(deployment.event_count().await, before);
}

async fn register(api: &Api, token: &str, metadata: Value) -> Value {
    let reply = Api::reply(
        api.http
            .post(api.url("/register"))
            .bearer_auth(token)
            .json(&metadata),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body
}

async fn pushing_is_required_by_the_client_or_by_the_server(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    browser::user(&deployment, "alice");
    let token = "initial-access-token-for-par-tests";
    let server = deployment.serve_with(&["--registration-token", token]);
    let api = Api::new(&server);
    let registered = register(
        &api,
        token,
        json!({
            "redirect_uris": [REDIRECT_URI],
            "scope": "openid profile email offline_access",
            "require_pushed_authorization_requests": true,
        }),
    )
    .await;
    assert_eq!(registered["require_pushed_authorization_requests"], true);
    let strict = Creds {
        id: registered["client_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        secret: registered["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let plain = Browser::new(&server)
        .authorize(&browser::oidc_params(&strict.id, "st"))
        .await;
    let query = plain.redirect_query(REDIRECT_URI);
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("invalid_request")
    );
    let reply = push(&api, &strict, &pushed_params(&strict.id, "st")).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let page = Browser::new(&server)
        .authorize(&[
            ("client_id", &strict.id),
            ("request_uri", &reply.field("request_uri")),
        ])
        .await;
    assert!(page.is_login(), "{}", page.html);

    // The CLI sets it too; without it, a plain request goes through.
    let cli = browser::web_client(&deployment, &["--require-par"]);
    let shown = deployment
        .writ(&["--json", "client", "show", &cli.id])
        .success()
        .json();
    assert_eq!(shown["require_pushed_authorization_requests"], true);
    let lax = browser::web_client(&deployment, &[]);
    let page = Browser::new(&server)
        .authorize(&browser::oidc_params(&lax.id, "st"))
        .await;
    assert!(
        page.is_login(),
        "an ordinary client still may: {}",
        page.html
    );
    let discovery: Value = serde_json::from_str(
        &api.text("/.well-known/oauth-authorization-server")
            .await
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(
        discovery["pushed_authorization_request_endpoint"],
        server.url("/par")
    );
    assert_eq!(discovery["require_pushed_authorization_requests"], false);
    server.stop();

    let strict_server = deployment.serve_with(&["--require-par"]);
    let page = Browser::new(&strict_server)
        .authorize(&browser::oidc_params(&lax.id, "st"))
        .await;
    let query = page.redirect_query(REDIRECT_URI);
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("invalid_request")
    );
    let discovery: Value = serde_json::from_str(
        &Api::new(&strict_server)
            .text("/.well-known/openid-configuration")
            .await
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(discovery["require_pushed_authorization_requests"], true);
}

async fn two_processes_racing_for_one_request_uri_give_one_sign_in(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    let first = deployment.serve();
    let second = deployment.serve();
    let api = Api::new(&first);
    for round in 0..5 {
        let state = format!("round-{round}");
        let reply = push(&api, &app, &pushed_params(&app.id, &state)).await;
        let request_uri = reply.field("request_uri");
        let attempts = [&first, &second, &first, &second].map(|server| {
            let browser = Browser::new(server);
            let params = [
                ("client_id", app.id.clone()),
                ("request_uri", request_uri.clone()),
            ];
            async move {
                let pairs: Vec<(&str, &str)> =
                    params.iter().map(|(n, v)| (*n, v.as_str())).collect();
                browser.authorize(&pairs).await
            }
        });
        let pages = futures::future::join_all(attempts).await;
        let signed = pages.iter().filter(|page| page.is_login()).count();
        assert_eq!(signed, 1, "round {round}: one request_uri, one sign-in");
        for page in pages.iter().filter(|page| !page.is_login()) {
            page.assert_error_page("the losers of the race");
        }
    }
    assert_eq!(
        pushed_events(&deployment, "PushedRequestUsed").await,
        5,
        "each use committed before its page, once"
    );
}

async fn public_clients_pushes_are_counted_per_address(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let spa = browser::web_client(&deployment, &["--public"]);
    let server = deployment.serve_with(&["--ip-failure-limit", "3"]);
    let api = Api::new(&server);
    let before = deployment.event_count().await;
    let params = pushed_params(&spa.id, "st");
    for _ in 0..3 {
        let reply = api.post("/par", None, form(&params)).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let refused = api.post("/par", None, form(&params)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(
        deployment.event_count().await,
        before + 3,
        "a public client_id is no credential: its pushes cannot grow the log unbounded"
    );
    let confidential = browser::web_client(&deployment, &[]);
    let reply = push(&api, &confidential, &pushed_params(&confidential.id, "st")).await;
    assert_eq!(reply.status, 201, "authenticated pushes are not counted");
}
