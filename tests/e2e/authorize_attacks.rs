//! The checklist's attacks on the authorization endpoint and on code
//! redemption (R1–R4, R6, R9–R14, R20–R22, R41, R42, R63), as raw HTTP.
//! Each case asserts that the log did not grow unless the checklist expects
//! an event. The pages' own attacks are in `page_attacks.rs`.

use std::time::{Duration, Instant};

use crate::browser::{self, Browser, CHALLENGE, REDIRECT_URI, VERIFIER};
use crate::harness::{Backend, Deployment, Server};
use crate::oauth::{self, Api, Creds};

writ_testing::on_both_backends!(
    requests_with_a_bad_client_or_redirect_uri_get_an_error_page_and_record_nothing,
    other_bad_requests_are_redirected_with_an_error_state_and_iss,
    token_requests_for_codes_enforce_pkce_binding_and_redirect_uri,
);

/// A name, the request's parameters, and the error it must come back with.
type RedirectCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

const REGISTERED: &str = "https://app.example.com/cb";
const NATIVE: &str = "http://127.0.0.1/native-cb";

pub(crate) struct Fixture {
    pub deployment: Deployment,
    pub server: Server,
    pub web: Creds,
    pub strict: Creds,
    pub native: Creds,
    pub public: Creds,
}

pub(crate) async fn fixture(backend: Backend, serve: &[&str]) -> Fixture {
    let deployment = Deployment::with_keys(backend).await;
    let web = browser::web_client(&deployment, &[]);
    let strict = oauth::client(
        &deployment,
        &["--redirect-uri", REGISTERED, "--scope", "openid profile"],
    );
    let native = oauth::client(
        &deployment,
        &[
            "--redirect-uri",
            NATIVE,
            "--application-type",
            "native",
            "--public",
            "--scope",
            "openid",
        ],
    );
    let public = oauth::client(
        &deployment,
        &[
            "--redirect-uri",
            REDIRECT_URI,
            "--public",
            "--scope",
            "openid profile",
        ],
    );
    browser::user(&deployment, "alice");
    browser::user(&deployment, "mallory");
    let server = deployment.serve_with(serve);
    Fixture {
        deployment,
        server,
        web,
        strict,
        native,
        public,
    }
}

pub(crate) fn request<'a>(client_id: &'a str, redirect_uri: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st"),
    ]
}

async fn requests_with_a_bad_client_or_redirect_uri_get_an_error_page_and_record_nothing(
    backend: Backend,
) {
    let f = fixture(backend, &[]).await;
    let person = Browser::new(&f.server);
    let events = f.deployment.event_count().await;
    let strict = f.strict.id.as_str();
    // R1: every one of these differs from the registered URI by one trick.
    let variants = [
        "HTTPS://app.example.com/cb",
        "https://APP.example.com/cb",
        "https://app.example.com/CB",
        "https://app.example.com/cb/",
        "https://app.example.com:443/cb",
        "https://app.example.com/cb?x=1",
        "https://app.example.com/cb#frag",
        "https://app.example.com/cb;p",
        "https://app.example.com/x/../cb",
        "https://app.example.com/x/%2E%2E/cb",
        "https://app.example.com/x/%252E%252E/cb",
        "https://app.example.com.evil.com/cb",
        "https://app.example.com@evil.com/cb",
        "https://evil.com\\@app.example.com/cb",
    ];
    for variant in variants {
        let page = person.authorize(&request(strict, variant)).await;
        page.assert_error_page(&format!("R1 {variant}"));
    }
    let huge_state = "s".repeat(1024 * 1024);
    let brackets = format!("http://[{}]/", ":".repeat(5000));
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "R2 unknown client, bogus response_type, evil URI",
            vec![
                ("client_id", "no-such-client"),
                ("redirect_uri", "https://evil.example/"),
                ("response_type", "bogus"),
                ("state", "st"),
            ],
        ),
        (
            "R2 no client_id",
            vec![("redirect_uri", REDIRECT_URI), ("response_type", "code")],
        ),
        ("R2 valid client, evil URI, bogus type", {
            let mut r = request(&f.web.id, "https://evil.example/cb");
            r[2] = ("response_type", "token");
            r
        }),
        (
            "R3 OpenID request without redirect_uri",
            vec![
                ("client_id", f.web.id.as_str()),
                ("response_type", "code"),
                ("scope", "openid"),
            ],
        ),
        (
            "R4 web client with another loopback port",
            request(&f.web.id, "http://127.0.0.1:9998/cb"),
        ),
        (
            "R4 native client, userinfo trick",
            request(&f.native.id, "http://localhost:80@evil.example/native-cb"),
        ),
        (
            "R4 native client, other path",
            request(&f.native.id, "http://127.0.0.1:5000/native-cb/x"),
        ),
        (
            "R4 native client, localhost instead of the IP",
            request(&f.native.id, "http://localhost:5000/native-cb"),
        ),
        ("R63 pathological URI", request(&f.web.id, &brackets)),
        ("R38 a repeated parameter", {
            let mut r = request(&f.web.id, REDIRECT_URI);
            r.push(("state", "again"));
            r
        }),
    ];
    for (name, params) in &cases {
        person.authorize(params).await.assert_error_page(name);
    }
    let started = Instant::now();
    let mut big = request(&f.web.id, REDIRECT_URI);
    big.push(("nonce", &huge_state));
    let page = Browser::page(
        person
            .http
            .post(person.base.clone() + "/authorize")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(oauth::form(&big)),
    )
    .await;
    page.assert_error_page("R63 a megabyte parameter");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "R63 answers fast"
    );
    f.writ_disable(&f.strict.id);
    let events_after_disable = f.deployment.event_count().await;
    person
        .authorize(&request(strict, REGISTERED))
        .await
        .assert_error_page("a disabled client");
    assert_eq!(
        events + 1,
        events_after_disable,
        "only the disable was recorded"
    );
    assert_eq!(
        f.deployment.event_count().await,
        events_after_disable,
        "nothing else"
    );

    // R3: without openid a single registered URI may be the default; R4:
    // a native client's loopback port may vary.
    let defaulted = person
        .authorize(&[
            ("client_id", f.web.id.as_str()),
            ("response_type", "code"),
            ("scope", "profile"),
        ])
        .await;
    assert!(
        defaulted.is_login(),
        "R3 default redirect URI: {}",
        defaulted.html
    );
    let native = request(&f.native.id, "http://127.0.0.1:51234/native-cb");
    let mut native = native;
    native.extend([
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    assert!(
        person.authorize(&native).await.is_login(),
        "R4 native loopback port"
    );
}

impl Fixture {
    fn writ_disable(&self, client_id: &str) {
        self.deployment
            .writ(&["client", "disable", client_id])
            .success();
    }
}

async fn other_bad_requests_are_redirected_with_an_error_state_and_iss(backend: Backend) {
    let f = fixture(backend, &[]).await;
    let person = Browser::new(&f.server);
    let issuer = f.server.url("");
    let events = f.deployment.event_count().await;
    let web = f.web.id.as_str();
    let with = |extra: &[(&'static str, &'static str)], drop: &[&str]| {
        let mut params: Vec<(&str, &str)> = request(web, REDIRECT_URI)
            .into_iter()
            .filter(|(name, _)| !drop.contains(name))
            .collect();
        params.extend_from_slice(extra);
        params
    };
    let cases: Vec<RedirectCase> = vec![
        (
            "R41 response_type=token",
            with(&[("response_type", "token")], &["response_type"]),
            "unsupported_response_type",
        ),
        (
            "R41 hybrid",
            with(&[("response_type", "code id_token")], &["response_type"]),
            "unsupported_response_type",
        ),
        (
            "missing response_type",
            with(&[], &["response_type"]),
            "invalid_request",
        ),
        (
            "R10 plain",
            with(
                &[
                    ("code_challenge", CHALLENGE),
                    ("code_challenge_method", "plain"),
                ],
                &[],
            ),
            "invalid_request",
        ),
        (
            "R10 no method",
            with(&[("code_challenge", CHALLENGE)], &[]),
            "invalid_request",
        ),
        (
            "R10 method without challenge",
            with(&[("code_challenge_method", "S256")], &[]),
            "invalid_request",
        ),
        (
            "R11 short challenge",
            with(
                &[("code_challenge", "abc"), ("code_challenge_method", "S256")],
                &[],
            ),
            "invalid_request",
        ),
        (
            "R11 bad characters",
            with(
                &[
                    (
                        "code_challenge",
                        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c+",
                    ),
                    ("code_challenge_method", "S256"),
                ],
                &[],
            ),
            "invalid_request",
        ),
        (
            "scope beyond the client's",
            with(&[("scope", "openid admin")], &["scope"]),
            "invalid_scope",
        ),
        (
            "R42 prompt=none without a session",
            with(&[("prompt", "none")], &[]),
            "login_required",
        ),
        (
            "prompt=none with login",
            with(&[("prompt", "none login")], &[]),
            "invalid_request",
        ),
        (
            "max_age not a number",
            with(&[("max_age", "soon")], &[]),
            "invalid_request",
        ),
        (
            "response_mode=fragment",
            with(&[("response_mode", "fragment")], &[]),
            "invalid_request",
        ),
        (
            "a resource that is not an absolute URI",
            with(&[("resource", "other.example/api")], &[]),
            "invalid_target",
        ),
    ];
    for (name, params, error) in &cases {
        let query = person.authorize(params).await.redirect_query(REDIRECT_URI);
        assert_eq!(
            query.get("error").map(String::as_str),
            Some(*error),
            "{name}"
        );
        assert_eq!(
            query.get("state").map(String::as_str),
            Some("st"),
            "{name}: state"
        );
        assert_eq!(query.get("iss"), Some(&issuer), "{name}: R22 iss");
        assert!(!query.contains_key("code"), "{name}");
    }
    let public = request(&f.public.id, REDIRECT_URI);
    let query = person.authorize(&public).await.redirect_query(REDIRECT_URI);
    assert_eq!(
        query["error"], "invalid_request",
        "R9 public client without PKCE"
    );
    assert_eq!(
        f.deployment.event_count().await,
        events,
        "no refusal records anything"
    );

    // Deny: access_denied with state and iss; nothing issued.
    let login = person.authorize(&request(web, REDIRECT_URI)).await;
    let consent = person
        .follow(&person.sign_in(&login, "alice", browser::PASSWORD).await)
        .await;
    let denied = person
        .decide(&consent, "deny")
        .await
        .redirect_query(REDIRECT_URI);
    assert_eq!(denied["error"], "access_denied");
    assert_eq!(denied["state"], "st");
    assert_eq!(denied["iss"], issuer);
    assert_eq!(
        f.deployment
            .count("SELECT count(*) FROM events WHERE event_type = 'CodeIssued'")
            .await,
        0
    );
    // R42: prompt=login asks again although signed in; max_age=0 as well.
    let mut again = request(web, REDIRECT_URI);
    again.push(("prompt", "login"));
    assert!(person.authorize(&again).await.is_login(), "prompt=login");
    let mut aged = request(web, REDIRECT_URI);
    aged.push(("max_age", "0"));
    crate::harness::eventually("max_age=0 to ask for a sign-in", || async {
        person.authorize(&aged).await.is_login().then_some(())
    })
    .await;
}

/// A code for `client` through a real sign-in and consent.
async fn code_for(person: &Browser, client_id: &str, pkce: bool, user: &str) -> String {
    let mut params = request(client_id, REDIRECT_URI);
    if pkce {
        params.extend([
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]);
    }
    person
        .code_flow(&params, user)
        .await
        .redirect_query(REDIRECT_URI)["code"]
        .clone()
}

async fn token_requests_for_codes_enforce_pkce_binding_and_redirect_uri(backend: Backend) {
    let f = fixture(backend, &[]).await;
    let person = Browser::new(&f.server);
    let api = Api::new(&f.server);
    let other = browser::web_client(&f.deployment, &[]);
    let exchange = |creds: &Creds, code: &str, redirect: &str, verifier: Option<&str>| {
        let mut params = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", redirect.to_owned()),
        ];
        if let Some(v) = verifier {
            params.push(("code_verifier", v.to_owned()));
        }
        let creds = creds.clone();
        let api = &api;
        async move {
            let borrowed: Vec<(&str, &str)> =
                params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            api.token(&creds, &borrowed).await
        }
    };
    let burned = || {
        f.deployment
            .count("SELECT count(*) FROM events WHERE event_type = 'CodeBurned'")
    };

    let code = code_for(&person, &f.web.id, true, "alice").await;
    let events = f.deployment.event_count().await;
    let reply = exchange(&f.web, &code, "http://127.0.0.1:9999/cb/", Some(VERIFIER)).await;
    assert_eq!(reply.error(), "invalid_grant", "R6 another redirect_uri");
    let reply = exchange(&other, &code, REDIRECT_URI, Some(VERIFIER)).await;
    assert_eq!(reply.error(), "invalid_grant", "R20 another client");
    let reply = exchange(&f.web, "no-such-code", REDIRECT_URI, Some(VERIFIER)).await;
    assert_eq!(reply.error(), "invalid_grant", "an unknown code");
    assert_eq!(
        f.deployment.event_count().await,
        events,
        "these refusals record nothing"
    );
    assert_eq!(
        exchange(&f.web, &code, REDIRECT_URI, Some(VERIFIER))
            .await
            .status,
        200
    );

    for (name, verifier) in [
        ("R12 missing verifier", None),
        ("R12 wrong verifier", Some("x".repeat(43))),
        ("R11 verifier too short", Some("abc".to_owned())),
    ] {
        let code = code_for(&person, &f.web.id, true, "alice").await;
        let before = burned().await;
        let reply = exchange(&f.web, &code, REDIRECT_URI, verifier.as_deref()).await;
        assert_eq!(reply.error(), "invalid_grant", "{name}");
        assert_eq!(burned().await, before + 1, "{name}: R14 the code is burned");
        let retry = exchange(&f.web, &code, REDIRECT_URI, Some(VERIFIER)).await;
        assert_eq!(
            retry.error(),
            "invalid_grant",
            "{name}: R14 the right verifier is too late"
        );
    }
    let code = code_for(&person, &f.web.id, false, "alice").await;
    let before = burned().await;
    let reply = exchange(&f.web, &code, REDIRECT_URI, Some(VERIFIER)).await;
    assert_eq!(reply.error(), "invalid_grant", "R13 PKCE downgrade");
    assert_eq!(burned().await, before + 1, "R13 burns the code");

    // A public client proves nothing but the verifier (`none`, RFC 6749 §2.3).
    let public = |code: &str, verifier: Option<&str>| {
        let mut params = vec![
            ("grant_type", "authorization_code"),
            ("client_id", f.public.id.as_str()),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
        ];
        params.extend(verifier.map(|v| ("code_verifier", v)));
        api.post("/token", None, oauth::form(&params))
    };
    let code = code_for(&person, &f.public.id, true, "alice").await;
    let reply = public(&code, None).await;
    assert_eq!(
        reply.error(),
        "invalid_grant",
        "R9: a public client without its verifier"
    );
    let code = code_for(&person, &f.public.id, true, "alice").await;
    let reply = public(&code, Some(VERIFIER)).await;
    assert_eq!(
        reply.status, 200,
        "a public client with PKCE: {}",
        reply.body
    );
    assert!(reply.body["id_token"].is_string());
}
