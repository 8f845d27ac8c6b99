//! R72: a revoked grant is terminal. A code issued before the person
//! signed out cannot be redeemed afterwards, nothing revives the grant's
//! row, and the revocation tells resource servers to deny the grant for
//! as long as a token of that code could ever have lived.

use chrono::{DateTime, Utc};
use serde_json::Value;
use writ_store::statement::Statement;
use writ_store::RowExt;

use crate::browser::{self, Browser, REDIRECT_URI};
use crate::harness::{Backend, Deployment};
use crate::oauth::Api;

writ_testing::on_both_backends!(a_code_issued_before_logout_cannot_be_redeemed_after_it,);

async fn a_code_issued_before_logout_cannot_be_redeemed_after_it(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "erin");
    let server = deployment.serve();
    let api = Api::new(&server);
    let person = Browser::new(&server);
    let back = person
        .code_flow(&browser::oidc_params(&app.id, "s"), "erin")
        .await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();

    let account = person.get("/account").await;
    let signed_out = person
        .post("/logout", &[("csrf", &account.hidden("csrf"))])
        .await;
    assert!(signed_out.status.is_success(), "{}", signed_out.html);
    let grant_status = || async { grant_column(&deployment, "status").await };
    assert_eq!(
        grant_status().await,
        "revoked",
        "logout revoked the pending grant"
    );

    let events = deployment.event_count().await;
    let redeemed = browser::redeem(&api, &app, &code).await;
    assert_eq!(redeemed.status, 400, "{}", redeemed.body);
    assert_eq!(redeemed.error(), "invalid_grant");
    assert_eq!(
        deployment.event_count().await,
        events,
        "a refused redemption records nothing"
    );
    assert_eq!(grant_status().await, "revoked", "the grant stays revoked");
    assert_eq!(
        deployment
            .count("SELECT count(*) FROM tokens WHERE kind <> 'code'")
            .await,
        0,
        "no token was minted"
    );

    // The revocation's expiry covers every token the code could have
    // minted: the client's access-token lifetime plus its refresh
    // family's (30 days by default), counted from the code's expiry.
    let revocation = event_payload(&deployment, "GrantRevoked").await;
    let at = |field: &str| {
        revocation[field]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| panic!("{field} in {revocation}"))
    };
    assert!(
        at("expires_at") - at("revoked_at") >= chrono::Duration::days(30),
        "{revocation}"
    );
}

async fn grant_column(deployment: &Deployment, column: &str) -> String {
    let row = deployment
        .store()
        .await
        .db()
        .fetch_optional(&Statement::new(format!(
            "SELECT {column} AS value FROM grants"
        )))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    row.and_then(|row| row.text("value")).unwrap_or_default()
}

async fn event_payload(deployment: &Deployment, event_type: &str) -> Value {
    let row = deployment
        .store()
        .await
        .db()
        .fetch_optional(
            &Statement::new(
                "SELECT CAST(payload AS text) AS payload FROM events WHERE event_type = $1",
            )
            .text(event_type),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let payload = row.and_then(|row| row.text("payload")).unwrap_or_default();
    let wrapped: Value = serde_json::from_str(&payload).unwrap_or_default();
    // cqrs-es stores an event as `{ "<type>": { fields } }`.
    wrapped[event_type].clone()
}
