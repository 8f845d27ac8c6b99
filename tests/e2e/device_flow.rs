//! The device authorization grant (RFC 8628) against the real binary: the
//! `oauth2` crate as the device, a person answering on the verification
//! page, every polling error, and the audit answers afterwards.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse,
    TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::browser::{self, Browser, Page, PASSWORD};
use crate::harness::{eventually, Backend, Deployment, Server};
use crate::oauth::{self, Api, Creds, Reply};

writ_testing::on_both_backends!(
    the_oauth2_crate_gets_tokens_once_a_person_allows_the_device,
    polling_is_pending_slowed_denied_expired_or_invalid_and_records_nothing,
    clients_registered_without_the_device_grant_are_unauthorized,
    wrong_user_codes_are_throttled_per_address,
);

pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A public device client (a TV, a CLI) that may refresh.
pub fn device_client(deployment: &Deployment) -> Creds {
    oauth::client(
        deployment,
        &[
            "--name",
            "Living Room TV",
            "--public",
            "--grant-type",
            "device_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid profile offline_access",
        ],
    )
}

/// RFC 8628 §3.1 over raw HTTP, as a public client.
pub async fn start(api: &Api, client: &Creds, scope: &str) -> Reply {
    api.post(
        "/device_authorization",
        None,
        oauth::form(&[("client_id", &client.id), ("scope", scope)]),
    )
    .await
}

pub async fn poll(api: &Api, client: &Creds, device_code: &str) -> Reply {
    api.post(
        "/token",
        None,
        oauth::form(&[
            ("grant_type", DEVICE_GRANT),
            ("client_id", &client.id),
            ("device_code", device_code),
        ]),
    )
    .await
}

/// A person types `user_code` on the verification page in a fresh
/// browser, signs in as `username`, and answers `decision`.
pub async fn answer(server: &Server, username: &str, user_code: &str, decision: &str) -> Page {
    let browser = Browser::new(server);
    let entry = browser.get("/device").await;
    assert_eq!(entry.status, StatusCode::OK, "{}", entry.html);
    let login = browser
        .post(
            "/device",
            &[("csrf", &entry.hidden("csrf")), ("user_code", user_code)],
        )
        .await;
    assert!(login.is_login(), "{} {}", login.status, login.html);
    let confirm = browser
        .post(
            "/login",
            &[
                ("csrf", &login.hidden("csrf")),
                ("device", &login.hidden("device")),
                ("username", username),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(
        confirm.html.contains("action=\"/device/decision\""),
        "{} {}",
        confirm.status,
        confirm.html
    );
    assert!(
        confirm.html.contains("Living Room TV"),
        "the client is named"
    );
    browser
        .post(
            "/device/decision",
            &[
                ("csrf", &confirm.hidden("csrf")),
                ("request", &confirm.hidden("request")),
                ("decision", decision),
            ],
        )
        .await
}

async fn userinfo(api: &Api, access_token: &str) -> (u16, Value) {
    let reply = Api::reply(api.http.get(api.url("/userinfo")).bearer_auth(access_token)).await;
    (reply.status.as_u16(), reply.body)
}

async fn the_oauth2_crate_gets_tokens_once_a_person_allows_the_device(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let tv = device_client(&deployment);
    browser::user(&deployment, "alice");
    let server = deployment.serve_with(&["--device-poll-interval", "1s"]);
    let api = Api::new(&server);
    let discovery = api.discovery().await;
    assert_eq!(
        discovery["device_authorization_endpoint"],
        json!(api.url("/device_authorization"))
    );
    assert!(discovery["grant_types_supported"]
        .as_array()
        .is_some_and(|grants| grants.contains(&json!(DEVICE_GRANT))));

    let device = BasicClient::new(ClientId::new(tv.id.clone()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(api.url("/token")).unwrap_or_else(|e| panic!("{e}")))
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(api.url("/device_authorization"))
                .unwrap_or_else(|e| panic!("{e}")),
        );
    let http = api.http.clone();
    let details: StandardDeviceAuthorizationResponse = device
        .exchange_device_code()
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("offline_access".into()))
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("device authorization: {e:?}"));
    let user_code = details.user_code().secret().clone();
    assert_eq!(details.verification_uri().as_str(), api.url("/device"));
    let complete = details
        .verification_uri_complete()
        .map(|uri| uri.secret().clone())
        .unwrap_or_default();
    assert_eq!(
        browser::query_of(&complete).get("user_code"),
        Some(&user_code),
        "§3.3.1: {complete}"
    );
    assert_eq!(details.interval(), Duration::from_secs(1));
    assert_eq!(user_code.len(), 9, "XXXX-XXXX: {user_code}");

    // The device polls while the person answers, typing the code in
    // lower case without its dash (§6.1).
    let typed = user_code.replace('-', "").to_lowercase();
    let polling = device.exchange_device_access_token(&details).request_async(
        &http,
        tokio::time::sleep,
        Some(Duration::from_secs(60)),
    );
    let (tokens, done) = tokio::join!(polling, async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        answer(&server, "alice", &typed, "allow").await
    });
    assert_eq!(done.status, StatusCode::OK, "{}", done.html);
    assert!(done.html.contains("Device connected"), "{}", done.html);
    let tokens = tokens.unwrap_or_else(|e| panic!("the device got no token: {e:?}"));
    let access = tokens.access_token().secret().clone();
    let (status, person) = userinfo(&api, &access).await;
    assert_eq!(status, 200, "{person}");
    let refresh = tokens
        .refresh_token()
        .map(|t| t.secret().clone())
        .unwrap_or_else(|| panic!("offline_access brings a refresh token"));
    let raw = api
        .post(
            "/token",
            None,
            oauth::form(&[
                ("grant_type", "refresh_token"),
                ("client_id", &tv.id),
                ("refresh_token", &refresh),
            ]),
        )
        .await;
    assert_eq!(raw.status, 200, "a device grant refreshes: {}", raw.body);
    let keys: JwkSet = api.json("/jwks").await;
    let id_claims = crate::tokens::verified(&raw.field("id_token"), &keys, &tv.id, &api.base);
    assert_eq!(id_claims["sub"], person["sub"]);
    assert!(id_claims["auth_time"].is_i64(), "{id_claims}");
    assert!(id_claims.get("nonce").is_none());

    // The grant in the audit answers, with the sign-in and consent that
    // approved it.
    let gid = crate::dpop::claims_of(&access)["gid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let grants = deployment
        .writ(&["--json", "audit", "grants", "--subject", "alice"])
        .success()
        .json();
    let row = grants
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["gid"] == json!(gid)))
        .cloned()
        .unwrap_or_else(|| panic!("the device grant is listed: {grants}"));
    assert_eq!(
        (row["kind"].clone(), row["status"].clone()),
        (json!("device_code"), json!("active"))
    );
    let history = deployment
        .writ(&["--json", "audit", "history", "--grant", &gid])
        .success()
        .json();
    let events: Vec<String> = history
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["event"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for expected in [
        "DeviceAuthorizationStarted",
        "SessionStarted",
        "ConsentGranted",
        "DeviceAuthorizationApproved",
        "DeviceCodeRedeemed",
        "AccessTokenIssued",
    ] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected} in {events:?}"
        );
    }

    // The approval recorded a consent, so the person can take it back on
    // the account page, and the device's tokens stop at once.
    let person_browser = Browser::new(&server);
    let login = person_browser.get("/login").await;
    let signed_in = person_browser.sign_in(&login, "alice", PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let account = person_browser.get("/account").await;
    assert!(account.html.contains("Living Room TV"), "{}", account.html);
    person_browser.withdraw_consent(&tv.id).await;
    let (status, _) = userinfo(&api, &access).await;
    assert_eq!(status, 401, "withdrawn: the device's token is dead at once");

    // The grant's first event was indexed before anyone approved it; its
    // audit row names alice all the same, as a replay of the log does
    // (the soak found the two disagreeing).
    eventually("the live read model to equal a replay", || async {
        deployment
            .command(&["replay", "--verify"])
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(drop)
    })
    .await;
}

async fn polling_is_pending_slowed_denied_expired_or_invalid_and_records_nothing(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let tv = device_client(&deployment);
    let other = device_client(&deployment);
    browser::user(&deployment, "alice");
    let server = deployment.serve_with(&["--device-poll-interval", "1s"]);
    let api = Api::new(&server);

    let started = start(&api, &tv, "openid").await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(started.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(started.body["expires_in"], 600);
    let code = started.field("device_code");
    let before = deployment.event_count().await;
    let first = poll(&api, &tv, &code).await;
    assert_eq!(
        (first.status.as_u16(), first.error()),
        (400, "authorization_pending")
    );
    let hurried = poll(&api, &tv, &code).await;
    assert_eq!(
        (hurried.status.as_u16(), hurried.error()),
        (400, "slow_down"),
        "§3.5"
    );
    assert!(
        hurried.body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains('6'),
        "the interval grew by 5 s: {}",
        hurried.body
    );
    for (who, device_code) in [(&other, code.as_str()), (&tv, "not-a-device-code")] {
        let refused = poll(&api, who, device_code).await;
        assert_eq!(
            (refused.status.as_u16(), refused.error()),
            (400, "invalid_grant"),
            "{}",
            refused.body
        );
    }
    let scope_too_wide = start(&api, &tv, "openid admin").await;
    assert_eq!(scope_too_wide.error(), "invalid_scope");
    assert_eq!(
        deployment.event_count().await,
        before,
        "polls and refusals write nothing"
    );

    // Denied: the device is told so.
    let denied = start(&api, &tv, "openid").await;
    let page = answer(&server, "alice", &denied.field("user_code"), "deny").await;
    assert!(page.html.contains("Device refused"), "{}", page.html);
    let after_denial = deployment.event_count().await;
    for _ in 0..2 {
        let told = poll(&api, &tv, &denied.field("device_code")).await;
        assert_eq!(
            (told.status.as_u16(), told.error()),
            (400, "access_denied"),
            "{}",
            told.body
        );
    }
    assert_eq!(
        deployment.event_count().await,
        after_denial,
        "told from the rows"
    );

    // A password changed while the device waited does not kill what the
    // person then allows: the grant begins at the approval.
    let waiting = start(&api, &tv, "openid").await;
    deployment
        .writ_with_stdin(
            &["user", "set-password", "alice", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        )
        .success();
    answer(&server, "alice", &waiting.field("user_code"), "allow").await;
    let after_change = poll(&api, &tv, &waiting.field("device_code")).await;
    assert_eq!(after_change.status, 200, "{}", after_change.body);
    let (status, _) = userinfo(&api, &after_change.field("access_token")).await;
    assert_eq!(status, 200, "the token lives");

    // Allowed and redeemed once; the same code again is invalid_grant.
    let allowed = start(&api, &tv, "openid").await;
    answer(&server, "alice", &allowed.field("user_code"), "allow").await;
    let tokens = poll(&api, &tv, &allowed.field("device_code")).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let keys: JwkSet = api.json("/jwks").await;
    let id_claims = crate::tokens::verified(&tokens.field("id_token"), &keys, &tv.id, &api.base);
    assert!(
        id_claims["auth_time"].is_i64(),
        "openid was asked: {id_claims}"
    );
    let again = poll(&api, &tv, &allowed.field("device_code")).await;
    assert_eq!(again.error(), "invalid_grant", "single use: {}", again.body);
    // The code answered cannot be answered again.
    let browser = Browser::new(&server);
    let entry = browser.get("/device").await;
    let reused = browser
        .post(
            "/device",
            &[
                ("csrf", &entry.hidden("csrf")),
                ("user_code", &allowed.field("user_code")),
            ],
        )
        .await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST, "{}", reused.html);

    // Expired: another process with a one-second lifetime.
    let short = deployment.serve_with(&["--device-code-ttl", "1s", "--device-poll-interval", "1s"]);
    let short_api = Api::new(&short);
    let expiring = start(&short_api, &tv, "openid").await;
    assert_eq!(expiring.body["expires_in"], 1);
    let expiring_code = expiring.field("device_code");
    eventually("the device code expires", || async {
        let reply = poll(&short_api, &tv, &expiring_code).await;
        (reply.error() == "expired_token").then_some(())
    })
    .await;
    let late = answer_late(&short, &expiring.field("user_code")).await;
    assert_eq!(
        late.status,
        StatusCode::BAD_REQUEST,
        "an expired code cannot be approved"
    );
}

/// The code page's answer to a code typed after it expired.
async fn answer_late(server: &Server, user_code: &str) -> Page {
    let browser = Browser::new(server);
    let entry = browser.get("/device").await;
    browser
        .post(
            "/device",
            &[("csrf", &entry.hidden("csrf")), ("user_code", user_code)],
        )
        .await
}

async fn clients_registered_without_the_device_grant_are_unauthorized(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let web = browser::web_client(&deployment, &[]);
    let server = deployment.serve_with(&[
        "--registration-token",
        "initial-access-token-for-tests-0123",
    ]);
    let api = Api::new(&server);
    let before = deployment.event_count().await;
    let refused = api
        .post(
            "/device_authorization",
            Some(&web),
            oauth::form(&[("scope", "openid")]),
        )
        .await;
    assert_eq!(
        (refused.status.as_u16(), refused.error()),
        (400, "unauthorized_client"),
        "{}",
        refused.body
    );
    let at_token = api
        .token(&web, &[("grant_type", DEVICE_GRANT), ("device_code", "x")])
        .await;
    assert_eq!(
        (at_token.status.as_u16(), at_token.error()),
        (400, "unauthorized_client"),
        "{}",
        at_token.body
    );
    assert_eq!(deployment.event_count().await, before);

    // RFC 7591: a public client registers for the device grant itself.
    let registered = Api::reply(
        api.http
            .post(api.url("/register"))
            .bearer_auth("initial-access-token-for-tests-0123")
            .json(&json!({
                "client_name": "Kitchen Display",
                "grant_types": [DEVICE_GRANT],
                "token_endpoint_auth_method": "none",
                "scope": "openid",
            })),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.body["grant_types"], json!([DEVICE_GRANT]));
    let kiosk = Creds {
        id: registered.field("client_id"),
        secret: String::new(),
    };
    let started = start(&api, &kiosk, "openid").await;
    assert_eq!(started.status, 200, "{}", started.body);
}

async fn wrong_user_codes_are_throttled_per_address(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let tv = device_client(&deployment);
    let server = deployment.serve_with(&["--user-code-failure-limit", "3"]);
    let api = Api::new(&server);
    let real = start(&api, &tv, "openid").await.field("user_code");
    let browser = Browser::new(&server);
    let entry = browser.get("/device").await;
    let csrf = entry.hidden("csrf");
    for wrong in ["BCDF-GHJK", "ABCD-EFGH", "nonsense"] {
        let page = browser
            .post("/device", &[("csrf", &csrf), ("user_code", wrong)])
            .await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{wrong}: {}",
            page.html
        );
        assert!(page.html.contains("not valid"), "{}", page.html);
    }
    let throttled = browser
        .post("/device", &[("csrf", &csrf), ("user_code", &real)])
        .await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even a right code, past the limit"
    );
    assert!(throttled.header("retry-after").is_some());
    // A code in the query only fills the field: another site cannot make
    // a visitor's browser try codes for it.
    let through_query = browser.get(&format!("/device?user_code={real}")).await;
    assert_eq!(through_query.status, StatusCode::OK);
    assert!(through_query.html.contains(&format!("value=\"{real}\"")));
    assert!(!through_query.html.contains("not valid"));
}
