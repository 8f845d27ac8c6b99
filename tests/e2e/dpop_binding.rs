//! What a DPoP key binds besides access tokens (RFC 9449 §5, §10): a code
//! bound by `dpop_jkt` at `/authorize`, or by a proof sent with its push,
//! is redeemed only with that key, and stays unspent for the rightful
//! client when another key tries; a public client's refresh tokens are
//! bound to the key they were first issued with.

use crate::browser::{self, Browser, REDIRECT_URI, VERIFIER};
use crate::dpop::{post_with_proof, Key};
use crate::harness::{Backend, Deployment, Server};
use crate::oauth::{Api, Creds, Reply};

writ_testing::on_both_backends!(
    dpop_jkt_binds_the_code_and_a_public_clients_refresh_tokens,
    a_proof_with_the_push_binds_the_code,
);

async fn redeem(server: &Server, app: &Creds, code: &str, key: Option<&Key>) -> Reply {
    let api = Api::new(server);
    let proof = key.map(|key| key.proof("POST", &server.url("/token"), None));
    let params = [
        ("grant_type", "authorization_code"),
        ("client_id", app.id.as_str()),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];
    if app.secret.is_empty() {
        let mut request = api
            .http
            .post(api.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(crate::oauth::form(&params));
        if let Some(proof) = &proof {
            request = request.header("dpop", proof);
        }
        return Api::reply(request).await;
    }
    post_with_proof(&api, "/token", app, proof.as_deref(), &params).await
}

async fn refresh(server: &Server, app: &Creds, token: &str, key: Option<&Key>) -> Reply {
    let api = Api::new(server);
    let mut request = api
        .http
        .post(api.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::oauth::form(&[
            ("grant_type", "refresh_token"),
            ("client_id", app.id.as_str()),
            ("refresh_token", token),
        ]));
    if let Some(key) = key {
        request = request.header("dpop", key.proof("POST", &server.url("/token"), None));
    }
    Api::reply(request).await
}

async fn dpop_jkt_binds_the_code_and_a_public_clients_refresh_tokens(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let spa = browser::web_client(&deployment, &["--public"]);
    browser::user(&deployment, "alice");
    let server = deployment.serve();
    let (key, thief) = (Key::new(), Key::new());

    let jkt = key.thumbprint();
    let mut params = browser::oidc_params(&spa.id, "st-bound");
    params.push(("dpop_jkt", &jkt));
    let back = Browser::new(&server).code_flow(&params, "alice").await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();

    let before = deployment.event_count().await;
    for (attempt, why) in [(None, "no proof"), (Some(&thief), "another key")] {
        let refused = redeem(&server, &spa, &code, attempt).await;
        assert_eq!(
            (refused.status.as_u16(), refused.error()),
            (400, "invalid_grant"),
            "{why}: {}",
            refused.body
        );
    }
    assert_eq!(
        deployment.event_count().await,
        before,
        "nothing is recorded: the code is neither spent nor burned, and the thief's proof is refused before it is"
    );
    let tokens = redeem(&server, &spa, &code, Some(&key)).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.field("token_type"), "DPoP");
    let refresh_token = tokens.field("refresh_token");
    assert!(!refresh_token.is_empty(), "{}", tokens.body);

    // RFC 9449 §5: the public client's refresh token needs the same key.
    let before = deployment.event_count().await;
    for (attempt, why) in [(None, "no proof"), (Some(&thief), "another key")] {
        let refused = refresh(&server, &spa, &refresh_token, attempt).await;
        assert_eq!(refused.error(), "invalid_grant", "{why}: {}", refused.body);
    }
    assert_eq!(
        deployment.event_count().await,
        before,
        "refusals write nothing"
    );
    let refreshed = refresh(&server, &spa, &refresh_token, Some(&key)).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(refreshed.field("token_type"), "DPoP");
    let next = refreshed.field("refresh_token");
    let again = refresh(&server, &spa, &next, Some(&thief)).await;
    assert_eq!(
        again.error(),
        "invalid_grant",
        "the rotated token stays bound"
    );

    // Without the key, a spent code or a rotated token is nothing: it
    // neither counts as a replay nor revokes what the client holds.
    let before = deployment.event_count().await;
    let replayed_code = redeem(&server, &spa, &code, None).await;
    assert_eq!(replayed_code.error(), "invalid_grant");
    let reused = refresh(&server, &spa, &refresh_token, None).await;
    assert_eq!(reused.error(), "invalid_grant");
    assert_eq!(
        deployment.event_count().await,
        before,
        "no replay or reuse recorded, no revocation"
    );
    let still = refresh(&server, &spa, &next, Some(&key)).await;
    assert_eq!(still.status, 200, "the family lives: {}", still.body);

    let malformed = Browser::new(&server)
        .authorize(&[
            ("client_id", spa.id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "st-bad"),
            ("code_challenge", browser::CHALLENGE),
            ("code_challenge_method", "S256"),
            ("dpop_jkt", "not-a-thumbprint"),
        ])
        .await;
    assert_eq!(
        malformed.redirect_query(REDIRECT_URI)["error"],
        "invalid_request"
    );
}

async fn a_proof_with_the_push_binds_the_code(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "alice");
    let server = deployment.serve();
    let api = Api::new(&server);
    let (key, thief) = (Key::new(), Key::new());
    let par = server.url("/par");

    let params = browser::oidc_params(&app.id, "st-pushed");
    let mut mismatched = params.clone();
    let other = thief.thumbprint();
    mismatched.push(("dpop_jkt", &other));
    let before = deployment.event_count().await;
    let refused = post_with_proof(
        &api,
        "/par",
        &app,
        Some(&key.proof("POST", &par, None)),
        &mismatched,
    )
    .await;
    assert_eq!(
        (refused.status.as_u16(), refused.error()),
        (400, "invalid_dpop_proof")
    );
    let stale = key.proof("POST", &server.url("/token"), None);
    let refused = post_with_proof(&api, "/par", &app, Some(&stale), &params).await;
    assert_eq!(refused.error(), "invalid_dpop_proof", "htu is /par's");
    assert_eq!(
        deployment.event_count().await,
        before,
        "neither proof is recorded"
    );

    let pushed = post_with_proof(
        &api,
        "/par",
        &app,
        Some(&key.proof("POST", &par, None)),
        &params,
    )
    .await;
    assert_eq!(pushed.status, 201, "{}", pushed.body);
    let request_uri = pushed.field("request_uri");
    let back = Browser::new(&server)
        .code_flow(
            &[
                ("client_id", app.id.as_str()),
                ("request_uri", &request_uri),
            ],
            "alice",
        )
        .await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let refused = redeem(&server, &app, &code, Some(&thief)).await;
    assert_eq!(refused.error(), "invalid_grant", "{}", refused.body);
    let refused = redeem(&server, &app, &code, None).await;
    assert_eq!(refused.error(), "invalid_grant", "{}", refused.body);
    let tokens = redeem(&server, &app, &code, Some(&key)).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.field("token_type"), "DPoP");
}
