//! `writ user enable`: a disabled account may sign in again, and nothing
//! from before the disabling comes back: not its tokens, not its browser
//! sessions (a stolen cookie stays dead), not its grants' revocations.

use reqwest::StatusCode;

use crate::browser::{self, Browser, REDIRECT_URI};
use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::Api;

writ_testing::on_both_backends!(enabling_an_account_brings_back_nothing_from_before);

async fn enabling_an_account_brings_back_nothing_from_before(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "carol");
    let server = deployment.serve();
    let api = Api::new(&server);
    let person = Browser::new(&server);
    let params = browser::oidc_params(&app.id, "s1");
    let back = person.code_flow(&params, "carol").await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let tokens = browser::redeem(&api, &app, &code).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    let (access, refresh) = (tokens.field("access_token"), tokens.field("refresh_token"));

    deployment.writ(&["user", "disable", "carol"]).success();
    eventually("the disabling's revocation", || async {
        (deployment
            .count("SELECT count(*) FROM events WHERE event_type = 'GrantRevoked'")
            .await
            == 1)
            .then_some(())
    })
    .await;
    let events = deployment.count("SELECT count(*) FROM events").await;
    let refused = deployment.writ(&["user", "enable", "nobody"]).refused();
    assert!(refused.contains("nobody"), "{refused}");
    deployment.writ(&["user", "enable", "carol"]).success();
    assert_eq!(
        deployment.count("SELECT count(*) FROM events").await,
        events + 1,
        "one AccountEnabled, and the refused command recorded nothing"
    );
    let twice = deployment.writ(&["user", "enable", "carol"]).refused();
    assert!(twice.contains("not disabled"), "{twice}");

    // A revoked thing stays revoked.
    assert!(!api.is_active(&app, &access).await);
    assert!(!api.is_active(&app, &refresh).await);
    assert_eq!(
        api.refresh(&app, &refresh).await.status,
        StatusCode::BAD_REQUEST
    );

    // The old browser session does not sign anyone in silently.
    let mut silent = params.clone();
    silent.push(("prompt", "none"));
    let answer = person.authorize(&silent).await.redirect_query(REDIRECT_URI);
    assert_eq!(
        answer.get("error").map(String::as_str),
        Some("login_required"),
        "{answer:?}"
    );

    // Signing in again works, and its tokens are live.
    let again = person.code_flow(&params, "carol").await;
    let code = again.redirect_query(REDIRECT_URI)["code"].clone();
    let fresh = browser::redeem(&api, &app, &code).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert!(api.is_active(&app, &fresh.field("access_token")).await);
}
