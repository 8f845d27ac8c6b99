//! R51 and R61 after a full run of the token service and the browser
//! flows: no raw token, code, verifier, cookie, secret or password in the
//! database files or the server's log, and the read model rebuilt from the
//! log equals the live one.

use writ_projector::rebuild_and_compare;

use crate::browser::{self, Browser};
use crate::harness::{Backend, Deployment};
use crate::oauth::{self, form, Api};
use crate::privacy::{caught_up_store, database_bytes};
use crate::refresh::{password_app, user, PASSWORD};

writ_testing::on_both_backends!(no_raw_secret_reaches_the_store_or_the_log_and_the_model_rebuilds);

const REGISTRATION: &str = "registration-token-xylophone-42";

async fn no_raw_secret_reaches_the_store_or_the_log_and_the_model_rebuilds(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let service = oauth::client(&deployment, &[]);
    let opaque = oauth::client(&deployment, &["--token-format", "opaque"]);
    let app = password_app(&deployment, &[]);
    user(&deployment, "carol");
    let server = deployment.serve_with(&["--registration-token", REGISTRATION]);
    let api = Api::new(&server);
    let mut needles = vec![
        PASSWORD.to_owned(),
        REGISTRATION.to_owned(),
        service.secret.clone(),
        opaque.secret.clone(),
        app.secret.clone(),
    ];
    needles.push(api.client_credentials(&service).await);
    let opaque_token = api.client_credentials(&opaque).await;
    needles.push(opaque_token.clone());
    let login = api.password(&app, "carol", PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let refresh = login.field("refresh_token");
    let rotated = api.refresh(&app, &refresh).await;
    needles.extend([
        login.field("access_token"),
        refresh.clone(),
        rotated.field("access_token"),
        rotated.field("refresh_token"),
    ]);
    assert_eq!(api.refresh(&app, &refresh).await.error(), "invalid_grant");
    assert_eq!(api.revoke(&opaque, &opaque_token).await.status, 200);
    assert_eq!(
        api.password(&app, "carol", "wrong-password-31")
            .await
            .error(),
        "invalid_grant"
    );
    needles.push("wrong-password-31".into());
    let registered = api
        .http
        .post(api.url("/register"))
        .bearer_auth(REGISTRATION)
        .json(&serde_json::json!({"client_name": "dynamic", "grant_types": ["client_credentials"]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(registered.status(), 201);
    let registered: serde_json::Value = registered.json().await.unwrap_or_default();
    for secret in ["client_secret", "registration_access_token"] {
        needles.push(registered[secret].as_str().unwrap_or("missing").to_owned());
    }
    let bad_basic = api
        .post(
            "/token",
            None,
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &service.id),
                ("client_secret", "leaky-secret-7777"),
            ]),
        )
        .await;
    assert_eq!(bad_basic.status, 401);
    needles.push("leaky-secret-7777".into());
    needles.extend(browser_flow(&deployment, &server, &api).await);
    let log = server.log_lines().join("\n");
    server.stop();

    assert!(
        needles.iter().all(|n| n.len() >= 16),
        "every needle is specific"
    );
    let haystack = database_bytes(&deployment);
    let text = String::from_utf8_lossy(&haystack);
    for needle in &needles {
        assert!(
            !text.contains(needle.as_str()),
            "R51: {needle:?} is in the database"
        );
        assert!(
            !log.contains(needle.as_str()),
            "R51: {needle:?} is in the log"
        );
    }
    let store = caught_up_store(&deployment).await;
    let differences = rebuild_and_compare(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(differences.is_empty(), "R61: {differences:?}");
}

/// Sign-in (one wrong password first), consent, code exchange, withdrawal
/// and logout; returns every secret the flow saw.
async fn browser_flow(
    deployment: &Deployment,
    server: &crate::harness::Server,
    api: &Api,
) -> Vec<String> {
    let web = browser::web_client(deployment, &[]);
    browser::user(deployment, "dana");
    let person = Browser::new(server);
    let login = person
        .authorize(&browser::oidc_params(&web.id, "leak-state"))
        .await;
    let wrong = person
        .sign_in(&login, "dana", "wrong-browser-password-5")
        .await;
    assert_eq!(wrong.status, 401);
    let signed_in = person.sign_in(&login, "dana", browser::PASSWORD).await;
    let cookie = signed_in.header("set-cookie").unwrap_or_default();
    let session = cookie
        .strip_prefix("writ_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {cookie}"))
        .to_owned();
    let consent = person.follow(&signed_in).await;
    let back = person.decide(&consent, "allow").await;
    let code = back.redirect_query(browser::REDIRECT_URI)["code"].clone();
    let tokens = browser::redeem(api, &web, &code).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let account = person.get("/account").await;
    let withdrawn = person
        .post(
            "/account/consents",
            &[("csrf", &account.hidden("csrf")), ("client_id", &web.id)],
        )
        .await;
    assert_eq!(withdrawn.status, 303);
    let out = person
        .post("/logout", &[("csrf", &account.hidden("csrf"))])
        .await;
    assert_eq!(out.status, 200, "signed out");
    vec![
        browser::PASSWORD.to_owned(),
        "wrong-browser-password-5".to_owned(),
        browser::VERIFIER.to_owned(),
        web.secret,
        session,
        login.hidden("csrf"),
        code,
        tokens.field("access_token"),
        tokens.field("refresh_token"),
        tokens.field("id_token"),
    ]
}
