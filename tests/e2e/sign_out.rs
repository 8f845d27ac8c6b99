//! `writ user sign-out` against a running `serve`: every live browser
//! session of the person ends and every grant issued in them is revoked
//! before the command returns, as their own logout would (R31); other
//! people's sessions and grants stand.

use crate::browser::{self, Browser, REDIRECT_URI};
use crate::harness::{Backend, Deployment};
use crate::oauth::Api;

writ_testing::on_both_backends!(signing_a_person_out_ends_their_sessions_and_grants_at_once,);

async fn signing_a_person_out_ends_their_sessions_and_grants_at_once(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "alice");
    browser::user(&deployment, "bob");
    let server = deployment.serve();
    let api = Api::new(&server);

    let mut tokens = Vec::new();
    let mut browsers = Vec::new();
    for (person, state) in [("alice", "s1"), ("alice", "s2"), ("bob", "s3")] {
        let browser = Browser::new(&server);
        let back = browser
            .code_flow(&browser::oidc_params(&app.id, state), person)
            .await;
        let code = back.redirect_query(REDIRECT_URI)["code"].clone();
        let reply = browser::redeem(&api, &app, &code).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        tokens.push((person, reply.field("access_token")));
        browsers.push((person, browser));
    }

    let out = deployment
        .writ(&["--json", "user", "sign-out", "alice"])
        .success()
        .json();
    assert_eq!(out["sessions_ended"], 2, "{out}");
    assert_eq!(out["grants_revoked"], 2, "{out}");
    for (person, token) in &tokens {
        assert_eq!(
            api.is_active(&app, token).await,
            *person == "bob",
            "{person}'s token, at once"
        );
    }
    for (person, browser) in &browsers {
        let page = browser
            .authorize(&browser::oidc_params(&app.id, "again"))
            .await;
        assert_eq!(
            page.is_login(),
            *person == "alice",
            "{person} signs in again?"
        );
    }
    let again = deployment
        .writ(&["--json", "user", "sign-out", "alice"])
        .success()
        .json();
    assert_eq!(again["sessions_ended"], 0, "nothing left: {again}");
    let nobody = deployment.writ(&["user", "sign-out", "carol"]).refused();
    assert!(nobody.contains("carol"), "{nobody}");
}
