//! Signed request objects (RFC 9101) against the real binary: by value at
//! `/authorize` and through `/par`, the object's claims are the request and
//! the parameters beside it are ignored; a wrong signature, audience,
//! issuer or expiry, `alg: none`, or a client without keys lead nowhere
//! and record nothing.

use serde_json::{json, Value};

use crate::browser::{self, Browser, CHALLENGE, REDIRECT_URI, VERIFIER};
use crate::harness::{Backend, Deployment};
use crate::private_key_jwt::{claims, keyed_client, post_asserted, Signer};

writ_testing::on_both_backends!(a_signed_request_object_is_the_request_by_value_and_through_par,);

fn request_object(client_id: &str, issuer: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": client_id, "aud": issuer, "exp": now + 300, "nbf": now - 5,
        "client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT_URI,
        "scope": "openid email", "state": "jar-state", "nonce": "jar-nonce",
        "code_challenge": CHALLENGE, "code_challenge_method": "S256",
    })
}

fn with(mut object: Value, name: &str, value: Value) -> Value {
    object[name] = value;
    object
}

async fn a_signed_request_object_is_the_request_by_value_and_through_par(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let signer = Signer::new("jar-1");
    let created = keyed_client(
        &deployment,
        &signer,
        &[
            "--name",
            "Signed App",
            "--redirect-uri",
            REDIRECT_URI,
            "--scope",
            "openid profile email",
        ],
    );
    let id = created["client_id"].as_str().unwrap_or_default().to_owned();
    let secret_client = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "alice");
    let server = deployment.serve();
    let api = crate::oauth::Api::new(&server);
    let issuer = server.url("");
    let issuer = issuer.trim_end_matches('/').to_owned();
    let sign = |object: &Value| {
        signer.sign(
            &json!({"alg": "ES256", "kid": "jar-1", "typ": "oauth-authz-req+jwt"}),
            object,
        )
    };

    // By value: the object is the request; the state, scope and redirect
    // URI beside it are ignored (RFC 9101 §5).
    let person = Browser::new(&server);
    let jwt = sign(&request_object(&id, &issuer));
    let login = person
        .authorize(&[
            ("client_id", id.as_str()),
            ("request", jwt.as_str()),
            ("state", "not-this"),
            ("scope", "openid profile"),
            ("redirect_uri", "https://attacker.example/cb"),
        ])
        .await;
    assert!(login.is_login(), "{} {}", login.status, login.html);
    let consent = person
        .follow(&person.sign_in(&login, "alice", browser::PASSWORD).await)
        .await;
    assert!(consent.html.contains("See your email address"));
    assert!(
        !consent.html.contains("See your name"),
        "the object's scope, not the query's"
    );
    let back = person.decide(&consent, "allow").await;
    let query = back.redirect_query(REDIRECT_URI);
    assert_eq!(query.get("state").map(String::as_str), Some("jar-state"));
    let tokens = post_asserted(
        &api,
        "/token",
        &signer.assertion(&claims(&id, &issuer)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &query["code"]),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);

    // Through PAR: the object alone is the push (RFC 9126 §3).
    let pushed = post_asserted(
        &api,
        "/par",
        &signer.assertion(&claims(&id, &issuer)),
        &[("request", &sign(&request_object(&id, &issuer)))],
    )
    .await;
    assert_eq!(pushed.status, 201, "{}", pushed.body);
    let page = Browser::new(&server)
        .authorize(&[
            ("client_id", &id),
            ("request_uri", &pushed.field("request_uri")),
        ])
        .await;
    assert!(page.is_login(), "{}", page.html);

    let before = deployment.event_count().await;
    let now = chrono::Utc::now().timestamp();
    let good = request_object(&id, &issuer);
    let none = format!(
        "{}.{}.",
        base64_url(&json!({"alg": "none"})),
        base64_url(&good)
    );
    let refused = [
        (
            "another key",
            Signer::new("jar-1").sign(&json!({"alg": "ES256", "kid": "jar-1"}), &good),
        ),
        (
            "another audience",
            sign(&with(good.clone(), "aud", json!("https://other.example"))),
        ),
        (
            "another issuer",
            sign(&with(good.clone(), "iss", json!("someone-else"))),
        ),
        (
            "another client_id inside",
            sign(&with(good.clone(), "client_id", json!("someone-else"))),
        ),
        ("expired", sign(&with(good.clone(), "exp", json!(now - 5)))),
        (
            "living two hours",
            sign(&with(good.clone(), "exp", json!(now + 7200))),
        ),
        (
            "not yet valid",
            sign(&with(good.clone(), "nbf", json!(now + 600))),
        ),
        (
            "a request_uri inside",
            sign(&with(
                good.clone(),
                "request_uri",
                json!("https://x.example/r"),
            )),
        ),
        ("alg none", none),
        (
            "no exp",
            sign(&{
                let mut object = good.clone();
                object.as_object_mut().map(|o| o.remove("exp"));
                object
            }),
        ),
        (
            "prompt as an array",
            sign(&with(good.clone(), "prompt", json!(["login"]))),
        ),
        (
            "max_age as a boolean",
            sign(&with(good.clone(), "max_age", json!(true))),
        ),
        (
            "an oversized state",
            sign(&with(good.clone(), "state", json!("s".repeat(3000)))),
        ),
        // A client assertion (the client as `sub`) is not a request object.
        (
            "a client assertion",
            sign(&with(
                with(good.clone(), "sub", json!(id)),
                "jti",
                json!("j-1"),
            )),
        ),
    ];
    for (what, jwt) in &refused {
        let page = Browser::new(&server)
            .authorize(&[("client_id", id.as_str()), ("request", jwt.as_str())])
            .await;
        page.assert_error_page(what);
    }
    let wrong_audience = &refused[1].1;
    let pushed = post_asserted(
        &api,
        "/par",
        &signer.assertion(&claims(&id, &issuer)),
        &[("request", wrong_audience)],
    )
    .await;
    assert_eq!(
        (pushed.status.as_u16(), pushed.error()),
        (400, "invalid_request_object"),
        "{}",
        pushed.body
    );
    // Nor is a request object, which went through a browser, ever a
    // client assertion (RFC 9101 §10.8), typed or carrying response_type.
    let now = chrono::Utc::now().timestamp();
    let as_assertion = with(
        with(
            with(request_object(&id, &issuer), "sub", json!(id)),
            "jti",
            json!("seen-in-a-browser"),
        ),
        "exp",
        json!(now + 120),
    );
    for (what, jwt) in [
        (
            "typed",
            signer.sign(
                &json!({"alg": "ES256", "kid": "jar-1", "typ": "oauth-authz-req+jwt"}),
                &as_assertion,
            ),
        ),
        (
            "untyped",
            signer.sign(&json!({"alg": "ES256", "kid": "jar-1"}), &as_assertion),
        ),
    ] {
        let reply = post_asserted(
            &api,
            "/token",
            &jwt,
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (401, "invalid_client"),
            "a {what} request object as a client assertion: {}",
            reply.body
        );
    }
    let keyless = Browser::new(&server)
        .authorize(&[
            ("client_id", secret_client.id.as_str()),
            (
                "request",
                &sign(&request_object(&secret_client.id, &issuer)),
            ),
        ])
        .await;
    keyless.assert_error_page("a client without keys");
    assert_eq!(
        deployment.event_count().await,
        before + 1,
        "only the refused push's client assertion is recorded"
    );
}

fn base64_url(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}
