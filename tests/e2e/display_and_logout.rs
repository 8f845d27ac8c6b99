//! Two things a person reads: a client's name (no invisible characters
//! that reorder it, R1-style spoofing of the consent page), and where
//! logout sends the browser (RP-Initiated Logout 1.0 §3: back to the
//! application only with a valid `id_token_hint`, or once the person has
//! confirmed on the page).

use serde_json::json;

use crate::browser::{self, Browser, LOGOUT_URI};
use crate::harness::{Backend, Deployment};
use crate::oauth::{self, Api};

const INITIAL: &str = "initial-access-token-display-0123";
const SPOOFED: &str = "Example Bank\u{202E}moc.live";

#[tokio::test]
async fn client_names_with_invisible_format_characters_are_refused_everywhere() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let refused = deployment
        .writ(&["client", "create", "--name", SPOOFED, "--scope", "read"])
        .refused();
    assert!(refused.contains("name"), "{refused}");

    let server = deployment.serve_with(&["--registration-token", INITIAL]);
    let api = Api::new(&server);
    let events = deployment.event_count().await;
    for name in [SPOOFED, "zero\u{200B}width", "bidi\u{2066}isolate"] {
        let reply = Api::reply(
            api.http
                .post(api.url("/register"))
                .bearer_auth(INITIAL)
                .json(&json!({
                    "client_name": name,
                    "redirect_uris": ["https://app.example/cb"],
                })),
        )
        .await;
        assert_eq!(reply.status, 400, "{name:?}: {}", reply.body);
        assert_eq!(reply.error(), "invalid_client_metadata");
    }
    let reply = Api::reply(
        api.http
            .post(api.url("/register"))
            .bearer_auth(INITIAL)
            .json(&json!({
                "client_name": "Example Bank",
                "redirect_uris": ["https://app.example/cb\u{202E}"],
            })),
    )
    .await;
    assert_eq!(reply.status, 400, "a redirect URI too: {}", reply.body);
    assert_eq!(deployment.event_count().await, events, "nothing recorded");
}

#[tokio::test]
async fn logout_without_an_id_token_hint_redirects_only_after_confirmation() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let app = browser::web_client(&deployment, &[]);
    let server = deployment.serve();
    let person = Browser::new(&server);
    let asked = person
        .get(&format!(
            "/logout?{}",
            oauth::form(&[
                ("client_id", &app.id),
                ("post_logout_redirect_uri", LOGOUT_URI),
                ("state", "st"),
            ])
        ))
        .await;
    assert_eq!(asked.status, 200, "no redirect without a hint");
    assert!(asked.location().is_none());
    assert!(asked.html.contains("Sign out?"), "{}", asked.html);
    let confirmed = person
        .post(
            "/logout",
            &[
                ("csrf", &asked.hidden("csrf")),
                ("request", &asked.hidden("request")),
            ],
        )
        .await;
    assert_eq!(
        confirmed
            .redirect_query(LOGOUT_URI)
            .get("state")
            .map(String::as_str),
        Some("st"),
        "once confirmed, back to the registered URI"
    );
}
