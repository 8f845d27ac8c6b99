//! The authorization code flow end to end: an independent OpenID Connect
//! relying party (the `openidconnect` crate) against the real binary, with
//! sign-in and consent scripted over HTTP; remembered consent and its
//! withdrawal on the account page; RP-initiated logout; codes under
//! concurrency, replay and expiry.

use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

use crate::browser::{self, Browser, LOGOUT_URI, REDIRECT_URI};
use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::Api;

writ_testing::on_both_backends!(
    an_independent_relying_party_completes_the_code_flow,
    a_remembered_consent_skips_the_page_until_it_is_withdrawn_on_the_account_page,
    logout_revokes_the_sessions_grants_and_returns_only_to_a_registered_uri,
    twenty_parallel_redemptions_give_one_token_response_and_revoke_it,
);

async fn an_independent_relying_party_completes_the_code_flow(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "alice");
    let server = deployment.serve();
    let api = Api::new(&server);
    let http = api.http.clone();
    let issuer = IssuerUrl::new(server.url("")).unwrap_or_else(|e| panic!("{e}"));
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .unwrap_or_else(|e| panic!("discovery: {e:?}"));
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(app.id.clone()),
        Some(ClientSecret::new(app.secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap_or_else(|e| panic!("{e}")));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let person = Browser::new(&server);
    let login = person.get(url.as_str()).await;
    let signed_in = person.sign_in(&login, "alice", browser::PASSWORD).await;
    assert_eq!(signed_in.status, 303, "R7: 303 after the credential POST");
    let consent = person.follow(&signed_in).await;
    assert!(
        consent.html.contains("Demo App"),
        "the consent page names the app"
    );
    assert!(
        consent.html.contains("See your email address"),
        "scopes in words"
    );
    let back = person.decide(&consent, "allow").await;
    let query = back.redirect_query(REDIRECT_URI);
    assert_eq!(query.get("state"), Some(csrf.secret()), "state verbatim");
    assert_eq!(
        query.get("iss").map(String::as_str),
        Some(server.url("").as_str())
    );

    let tokens = client
        .exchange_code(AuthorizationCode::new(query["code"].clone()))
        .unwrap_or_else(|e| panic!("{e:?}"))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("code exchange: {e:?}"));
    let id_token = tokens.id_token().unwrap_or_else(|| panic!("no id_token"));
    let id_verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .unwrap_or_else(|e| panic!("id_token: {e:?}"));
    assert_eq!(
        claims.email().map(|e| e.as_str().to_owned()),
        Some("alice@example.com".into())
    );
    assert!(claims.auth_time().is_some(), "auth_time");
    let expected_hash = claims
        .access_token_hash()
        .unwrap_or_else(|| panic!("at_hash"));
    let alg = id_token.signing_alg().unwrap_or_else(|e| panic!("{e:?}"));
    let key = id_token
        .signing_key(&id_verifier)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let actual_hash = AccessTokenHash::from_token(tokens.access_token(), alg, key)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        &actual_hash, expected_hash,
        "at_hash matches the access token"
    );
    assert_eq!(
        *alg,
        openidconnect::core::CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        "id_tokens are RS256 by default"
    );

    let userinfo: CoreUserInfoClaims = client
        .user_info(tokens.access_token().to_owned(), None)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("userinfo: {e:?}"));
    assert_eq!(userinfo.subject(), claims.subject());

    let refresh = tokens
        .refresh_token()
        .unwrap_or_else(|| panic!("no refresh token"));
    let refreshed = client
        .exchange_refresh_token(refresh)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("refresh: {e:?}"));
    // OpenID Connect Core §12.2: the same person and sign-in, no nonce.
    let renewed = refreshed
        .id_token()
        .unwrap_or_else(|| panic!("no id_token on refresh"))
        .claims(&id_verifier, |nonce: Option<&Nonce>| match nonce {
            None => Ok(()),
            Some(_) => Err("a refreshed id_token carries no nonce".to_owned()),
        })
        .unwrap_or_else(|e| panic!("refreshed id_token: {e:?}"));
    assert_eq!(renewed.subject(), claims.subject());
    assert_eq!(
        renewed.auth_time(),
        claims.auth_time(),
        "the original sign-in"
    );
    assert!(renewed.issue_time() >= claims.issue_time());
    let access = refreshed.access_token().secret().clone();
    assert!(api.is_active(&app, &access).await);
    // The crate refuses a plain-http revocation URL, so this one is raw.
    assert_eq!(api.revoke(&app, &access).await.status, 200);
    assert!(!api.is_active(&app, &access).await, "revoked at once");
}

async fn a_remembered_consent_skips_the_page_until_it_is_withdrawn_on_the_account_page(
    backend: Backend,
) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "bob");
    let server = deployment.serve();
    let api = Api::new(&server);
    let person = Browser::new(&server);
    let narrow = [
        ("client_id", app.id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("response_type", "code"),
        ("scope", "openid profile"),
        ("state", "s1"),
    ];
    let first = person.code_flow(&narrow, "bob").await;
    let code = first.redirect_query(REDIRECT_URI)["code"].clone();
    let tokens = redeem_plain(&api, &app, &code).await;

    let again = person.authorize(&narrow).await;
    assert!(
        again.redirect_query(REDIRECT_URI).contains_key("code"),
        "a remembered consent skips the page"
    );
    let mut silent = narrow.to_vec();
    silent.push(("prompt", "none"));
    let silent_back = person.authorize(&silent).await.redirect_query(REDIRECT_URI);
    assert!(
        silent_back.contains_key("code"),
        "R42: prompt=none with session and consent"
    );
    let mut silent_wider = silent.clone();
    silent_wider[3] = ("scope", "openid profile email");
    let refused = person
        .authorize(&silent_wider)
        .await
        .redirect_query(REDIRECT_URI);
    assert_eq!(
        refused["error"], "consent_required",
        "prompt=none cannot ask"
    );
    let mut wider = narrow.to_vec();
    wider[3] = ("scope", "openid profile email");
    assert!(
        person.authorize(&wider).await.is_consent(),
        "more scopes ask again"
    );
    let mut forced = narrow.to_vec();
    forced.push(("prompt", "consent"));
    assert!(
        person.authorize(&forced).await.is_consent(),
        "prompt=consent asks"
    );

    let account = person.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(account.html.contains("Demo App") && account.html.contains("openid profile"));
    let withdrawn = person
        .post(
            "/account/consents",
            &[("csrf", &account.hidden("csrf")), ("client_id", &app.id)],
        )
        .await;
    assert_eq!(withdrawn.status, 303);
    assert!(
        !api.is_active(&app, &tokens.0).await,
        "inactive as soon as the withdrawal answered"
    );
    let refreshed = api.refresh(&app, &tokens.1).await;
    assert_eq!(
        refreshed.error(),
        "invalid_grant",
        "R31: the refresh token is dead"
    );
    assert!(person
        .get("/account")
        .await
        .html
        .contains("No app has access"));
    assert!(
        person.authorize(&narrow).await.is_consent(),
        "consent asked again"
    );
    eventually("the policy's GrantRevoked", || async {
        (deployment.count_revocations("consent_withdrawn").await >= 1).then_some(())
    })
    .await;
}

/// Redeems a code issued without PKCE; returns (access, refresh).
async fn redeem_plain(api: &Api, app: &crate::oauth::Creds, code: &str) -> (String, String) {
    let reply = api
        .token(
            app,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    (reply.field("access_token"), reply.field("refresh_token"))
}

async fn logout_revokes_the_sessions_grants_and_returns_only_to_a_registered_uri(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "carol");
    let server = deployment.serve();
    let api = Api::new(&server);
    let person = Browser::new(&server);
    let params = browser::oidc_params(&app.id, "s");
    let back = person.code_flow(&params, "carol").await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let reply = browser::redeem(&api, &app, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (access, id_token) = (reply.field("access_token"), reply.field("id_token"));

    let events = deployment.event_count().await;
    let unregistered = person
        .get(&format!(
            "/logout?{}",
            crate::oauth::form(&[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ])
        ))
        .await;
    unregistered.assert_error_page("R59: unregistered post_logout_redirect_uri");
    let forged = person
        .get(&format!(
            "/logout?{}",
            crate::oauth::form(&[
                ("id_token_hint", &format!("{id_token}x")),
                ("post_logout_redirect_uri", LOGOUT_URI),
            ])
        ))
        .await;
    forged.assert_error_page("R59: a bad id_token_hint");
    assert_eq!(
        deployment.event_count().await,
        events,
        "refusals record nothing"
    );
    assert!(api.is_active(&app, &access).await);

    let out = person
        .get(&format!(
            "/logout?{}",
            crate::oauth::form(&[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", LOGOUT_URI),
                ("state", "bye-state"),
            ])
        ))
        .await;
    assert_eq!(
        out.redirect_query(LOGOUT_URI)
            .get("state")
            .map(String::as_str),
        Some("bye-state")
    );
    assert!(
        !api.is_active(&app, &access).await,
        "the session's grants are revoked"
    );
    assert!(
        person.authorize(&params).await.is_login(),
        "the session is gone"
    );
}

async fn twenty_parallel_redemptions_give_one_token_response_and_revoke_it(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "dave");
    let server = deployment.serve();
    let api = Api::new(&server);
    let person = Browser::new(&server);
    let back = person
        .code_flow(&browser::oidc_params(&app.id, "s"), "dave")
        .await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let redemptions =
        futures::future::join_all((0..20).map(|_| browser::redeem(&api, &app, &code))).await;
    let winners: Vec<_> = redemptions.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "R18: exactly one 200");
    assert!(
        redemptions
            .iter()
            .filter(|r| r.status != 200)
            .all(|r| r.status == 400 && r.error() == "invalid_grant"),
        "R18: nineteen invalid_grant, no 500"
    );
    assert_eq!(
        deployment
            .count("SELECT count(*) FROM events WHERE event_type = 'CodeRedeemed'")
            .await,
        1,
        "one redemption event"
    );
    let access = winners[0].field("access_token");
    let refresh = winners[0].field("refresh_token");
    assert!(
        !api.is_active(&app, &access).await,
        "R17: the replay revoked the winner's token"
    );
    assert_eq!(api.refresh(&app, &refresh).await.error(), "invalid_grant");
}

writ_testing::on_both_backends!(
    a_code_expires_and_stays_single_use,
    id_tokens_use_the_algorithm_the_client_registered,
);

async fn id_tokens_use_the_algorithm_the_client_registered(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let es = browser::web_client(&deployment, &["--id-token-alg", "ES256"]);
    let ed = browser::web_client(&deployment, &["--id-token-alg", "EdDSA"]);
    browser::user(&deployment, "frank");
    let server = deployment.serve();
    let api = Api::new(&server);
    let person = Browser::new(&server);
    let keys = crate::tokens::jwks(&api).await;
    for (client, alg) in [
        (&es, jsonwebtoken::Algorithm::ES256),
        (&ed, jsonwebtoken::Algorithm::EdDSA),
    ] {
        let back = person
            .code_flow(&browser::oidc_params(&client.id, "s"), "frank")
            .await;
        let code = back.redirect_query(REDIRECT_URI)["code"].clone();
        let id_token = browser::redeem(&api, client, &code).await.field("id_token");
        let header = jsonwebtoken::decode_header(&id_token).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(header.alg, alg, "R50: the registered algorithm");
        let kid = header.kid.unwrap_or_else(|| panic!("R50: no kid"));
        let jwk = keys
            .find(&kid)
            .unwrap_or_else(|| panic!("kid {kid} not published"));
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap_or_else(|e| panic!("{e}"));
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_audience(&[client.id.as_str()]);
        validation.set_issuer(&[server.url("").as_str()]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&id_token, &key, &validation)
            .unwrap_or_else(|e| panic!("{alg:?} id_token does not verify: {e}"))
            .claims;
        assert_eq!(claims["nonce"], "nonce-1", "R21 nonce");
        assert!(claims["auth_time"].is_i64() && claims["at_hash"].is_string());
        assert_eq!(claims["email"], "frank@example.com", "claims per scope");
    }
}

async fn a_code_expires_and_stays_single_use(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "erin");
    let server = deployment.serve_with(&["--code-ttl", "2s"]);
    let api = Api::new(&server);
    let person = Browser::new(&server);
    let params = browser::oidc_params(&app.id, "s");

    let back = person.code_flow(&params, "erin").await;
    let used = back.redirect_query(REDIRECT_URI)["code"].clone();
    assert_eq!(browser::redeem(&api, &app, &used).await.status, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let replayed = browser::redeem(&api, &app, &used).await;
    assert_eq!(replayed.error(), "invalid_grant", "R16 after 1 s");
    // L5: a replayed code reads exactly like a made-up one.
    let made_up = browser::redeem(&api, &app, "not-a-code").await;
    assert_eq!(made_up.error(), "invalid_grant");
    let generic = made_up.field("error_description");
    assert_eq!(replayed.field("error_description"), generic, "L5: replay");

    let issued = Instant::now();
    let back = person.authorize(&params).await;
    let unused = back.redirect_query(REDIRECT_URI)["code"].clone();
    // The code's configured lifetime is 2 s: wait it out, no longer.
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(issued.elapsed())).await;
    let events = deployment.event_count().await;
    let expired = browser::redeem(&api, &app, &unused).await;
    assert_eq!(expired.error(), "invalid_grant", "R19");
    assert_eq!(expired.field("error_description"), generic, "L5: expired");
    assert_eq!(
        deployment.event_count().await,
        events,
        "an expired code records nothing"
    );
    assert_eq!(
        browser::redeem(&api, &app, &used).await.error(),
        "invalid_grant",
        "R16 later"
    );
}
