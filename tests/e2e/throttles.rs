//! R73: the throttles never refuse a right secret or password because of
//! strangers' failures, do not tell which usernames exist, and believe
//! forwarding headers only from configured proxies. The counts live in
//! the process, so these run on the embedded store alone.

use crate::browser::{self, Browser, PASSWORD, REDIRECT_URI};
use crate::harness::{Backend, Deployment};
use crate::oauth::{self, Api, Creds};

#[tokio::test]
async fn bogus_secrets_under_a_public_clients_id_do_not_stop_its_users() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let public = oauth::client(
        &deployment,
        &[
            "--public",
            "--redirect-uri",
            REDIRECT_URI,
            "--scope",
            "openid",
        ],
    );
    browser::user(&deployment, "frank");
    let server =
        deployment.serve_with(&["--auth-failure-limit", "3", "--auth-failure-window", "1h"]);
    let api = Api::new(&server);
    for attempt in 0..10 {
        let bogus = api
            .post(
                "/token",
                None,
                oauth::form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &public.id),
                    ("client_secret", "guess"),
                ]),
            )
            .await;
        assert_eq!(bogus.status, 401, "attempt {attempt}: {}", bogus.body);
        assert!(
            bogus.header("retry-after").is_none(),
            "nothing to guess, nothing counted"
        );
    }
    let person = Browser::new(&server);
    let params = [
        ("client_id", public.id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "s"),
        ("code_challenge", browser::CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let back = person.code_flow(&params, "frank").await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let redeemed = api
        .post(
            "/token",
            None,
            oauth::form(&[
                ("grant_type", "authorization_code"),
                ("client_id", &public.id),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", browser::VERIFIER),
            ]),
        )
        .await;
    assert_eq!(redeemed.status, 200, "{}", redeemed.body);
}

#[tokio::test]
async fn sign_in_failures_from_one_address_refuse_no_right_password_and_reveal_no_names() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let app = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "grace");
    let server = deployment.serve_with(&[
        "--auth-failure-limit",
        "3",
        "--ip-failure-limit",
        "5",
        "--auth-failure-window",
        "1h",
    ]);
    let person = Browser::new(&server);
    let params = browser::oidc_params(&app.id, "s");
    let login = person.authorize(&params).await;

    // Behind a proxy everyone shares one address: strangers' failures
    // from it, past its limit, change no answer.
    for n in 0..8 {
        let made_up = person
            .sign_in(&login, &format!("stranger-{n}"), "nope")
            .await;
        assert_eq!(made_up.status, 401, "attempt {n}: {}", made_up.html);
    }

    // Past the per-name limit a wrong password is 429, for a name that
    // exists exactly as for one that does not.
    let mut answers = Vec::new();
    for name in ["grace", "nobody-at-all"] {
        for _ in 0..3 {
            let wrong = person.sign_in(&login, name, "wrong password").await;
            assert_eq!(wrong.status, 401, "{name}: {}", wrong.html);
        }
        let over = person.sign_in(&login, name, "wrong password").await;
        answers.push((over.status, over.header("retry-after").is_some()));
    }
    assert_eq!(answers[0], answers[1], "known and unknown names alike");
    assert_eq!(answers[0].0, 429);
    assert!(answers[0].1, "with Retry-After");

    let right = person.sign_in(&login, "grace", PASSWORD).await;
    assert_eq!(
        right.status, 303,
        "the right password is never refused: {}",
        right.html
    );
}

#[tokio::test]
async fn forwarding_headers_name_the_client_only_behind_a_trusted_proxy() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let service = oauth::client(&deployment, &["--scope", "read"]);
    let wrong = Creds {
        id: service.id.clone(),
        secret: "wrong".into(),
    };
    let limits = ["--auth-failure-limit", "2", "--auth-failure-window", "1h"];
    // Retry-After on a failure shows that failures counted under the
    // same key reached the limit.
    let over_limit = |api: &Api, from: &'static str| {
        let request = api
            .http
            .post(api.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", from)
            .basic_auth(&wrong.id, Some(&wrong.secret))
            .body(oauth::form(&[("grant_type", "client_credentials")]));
        async move {
            let reply = Api::reply(request).await;
            assert_eq!(reply.status, 401, "{}", reply.body);
            reply.header("retry-after").is_some()
        }
    };

    let direct = deployment.serve_with(&limits);
    let api = Api::new(&direct);
    for _ in 0..2 {
        assert!(!over_limit(&api, "203.0.113.1").await);
    }
    assert!(
        over_limit(&api, "203.0.113.2").await,
        "untrusted peer: the header is ignored, one address for both"
    );
    direct.stop();

    let mut args = limits.to_vec();
    args.extend(["--trusted-proxy", "127.0.0.0/8"]);
    let proxied = deployment.serve_with(&args);
    let api = Api::new(&proxied);
    for _ in 0..2 {
        assert!(!over_limit(&api, "203.0.113.1").await);
    }
    assert!(
        over_limit(&api, "203.0.113.1").await,
        "the same client again"
    );
    assert!(
        !over_limit(&api, "203.0.113.2").await,
        "behind a trusted proxy, another client is counted apart"
    );
}
