//! A consent withdrawn on the account page reaches a resource server over
//! Kafka and rejects that person's tokens for that app, and only those.

use crate::browser::{self, Browser, REDIRECT_URI};
use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::{self, Api, Creds};
use crate::revocation_stream::{kafka, messages_until, resource_server, serve};

/// Signs `username` in (once per browser) and returns an access token for
/// `app`, consent given.
async fn access_token(api: &Api, person: &Browser, app: &Creds, username: &str) -> String {
    let params = browser::oidc_params(&app.id, "s");
    let back = person.code_flow(&params, username).await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let reply = browser::redeem(api, app, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.field("access_token")
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Kafka: `bash scripts/test` starts them and runs this"]
async fn a_withdrawn_consent_rejects_that_persons_tokens_for_that_app_only() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let api_identity = oauth::client(&deployment, &[]);
    let (withdrawn_app, other_app) = (
        browser::web_client(&deployment, &["--audience", &api_identity.id]),
        browser::web_client(&deployment, &["--audience", &api_identity.id]),
    );
    browser::user(&deployment, "carol");
    browser::user(&deployment, "dave");
    let kafka = kafka();
    let writ = serve(&deployment, &kafka);
    let api = Api::new(&writ);
    let server = resource_server(&writ, &kafka, &api_identity.id).await;
    let (carol, dave) = (Browser::new(&writ), Browser::new(&writ));
    let carol_withdrawn = access_token(&api, &carol, &withdrawn_app, "carol").await;
    let carol_other = access_token(&api, &carol, &other_app, "carol").await;
    let dave_withdrawn = access_token(&api, &dave, &withdrawn_app, "dave").await;
    for token in [&carol_withdrawn, &carol_other, &dave_withdrawn] {
        assert!(server.authenticate(token).await.is_ok(), "live before");
    }

    assert_eq!(carol.withdraw_consent(&withdrawn_app.id).await.status, 303);
    eventually("the withdrawal to reach the resource server", || async {
        server
            .authenticate(&carol_withdrawn)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(
        server.authenticate(&carol_other).await.is_ok(),
        "carol's token for another app"
    );
    assert!(
        server.authenticate(&dave_withdrawn).await.is_ok(),
        "another person's token for the same app"
    );
    assert_eq!(server.introspection_calls(), 0);

    let stream = messages_until(&kafka, |seen, _| {
        seen.iter().any(|m| m["type"] == "consent_withdrawn")
    })
    .await;
    let message = stream
        .iter()
        .find(|m| m["type"] == "consent_withdrawn")
        .unwrap_or_else(|| panic!("no consent_withdrawn message"));
    assert_eq!(message["client_id"], withdrawn_app.id.as_str());
    assert!(message["sub"].is_string(), "{message}");
    for message in &stream {
        crate::schema::assert_valid(message);
    }
}
