//! The checklist's attacks on Writ's pages (R7, R8, R43–R46), the sign-in
//! throttles, stale forms and cookie attributes, as raw HTTP. Each case
//! asserts that the log did not grow unless the checklist expects an event.

use std::time::{Duration, Instant};

use crate::authorize_attacks::{fixture, request};
use crate::browser::{self, Browser, Page, REDIRECT_URI};
use crate::harness::Backend;
use crate::oauth;

writ_testing::on_both_backends!(
    pages_are_bound_to_their_browser_and_carry_security_headers,
    sign_in_failures_issue_nothing_and_are_throttled,
    failures_from_one_address_change_no_answer,
    a_stale_sign_in_form_is_refused,
    an_https_issuer_sets_secure_cookies,
);

fn assert_page_headers(page: &Page, what: &str) {
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{what}: R43 CSP {csp}"
    );
    assert_eq!(
        page.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{what}: R43"
    );
    assert_eq!(
        page.header("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}: R44"
    );
    assert!(
        page.header("access-control-allow-origin").is_none(),
        "{what}: R45 no CORS"
    );
    for attribute in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(
            !page.html.contains(attribute),
            "{what}: R44 no third-party resources"
        );
    }
}

async fn pages_are_bound_to_their_browser_and_carry_security_headers(backend: Backend) {
    let f = fixture(backend, &[]).await;
    let person = Browser::new(&f.server);
    let attacker = Browser::new(&f.server);
    let params = request(&f.web.id, REDIRECT_URI);

    let mut hinted = params.clone();
    hinted.push(("login_hint", "alice"));
    let login = person.authorize(&hinted).await;
    assert_page_headers(&login, "sign-in page");
    assert!(
        login.html.contains("value=\"alice\""),
        "login_hint fills the username"
    );
    let cookie = login.header("set-cookie").unwrap_or_default();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            cookie.contains(attribute),
            "the binding cookie is {attribute}: {cookie}"
        );
    }
    assert!(!cookie.contains("Secure"), "plain http issuer: {cookie}");
    let events = f.deployment.event_count().await;
    // R46: the victim's sign-in form, replayed from another browser.
    let replayed = attacker
        .post(
            "/login",
            &[
                ("csrf", &login.hidden("csrf")),
                ("request", &login.hidden("request")),
                ("username", "mallory"),
                ("password", browser::PASSWORD),
            ],
        )
        .await;
    replayed.assert_error_page("R46 sign-in form from another browser");
    let attacker_login = attacker.authorize(&params).await;
    let mixed = attacker
        .post(
            "/login",
            &[
                ("csrf", &attacker_login.hidden("csrf")),
                ("request", &login.hidden("request")),
                ("username", "mallory"),
                ("password", browser::PASSWORD),
            ],
        )
        .await;
    mixed.assert_error_page("R46 another browser's sealed request");
    let no_csrf = person
        .post(
            "/login",
            &[
                ("request", &login.hidden("request")),
                ("username", "alice"),
                ("password", browser::PASSWORD),
            ],
        )
        .await;
    no_csrf.assert_error_page("CSRF token missing");
    assert_page_headers(&no_csrf, "error page");
    assert_eq!(
        f.deployment.event_count().await,
        events,
        "replays record nothing"
    );

    let signed_in = person.sign_in(&login, "alice", browser::PASSWORD).await;
    assert_eq!(signed_in.status, 303, "R7");
    assert_page_headers(&signed_in, "the 303 after sign-in");
    let consent = person.follow(&signed_in).await;
    assert_page_headers(&consent, "consent page");
    let events = f.deployment.event_count().await;
    // R46: mallory, signed in elsewhere, posts alice's consent form.
    let mallory_login = attacker.authorize(&params).await;
    let mallory_in = attacker
        .sign_in(&mallory_login, "mallory", browser::PASSWORD)
        .await;
    let _ = attacker.follow(&mallory_in).await;
    let events_mallory = f.deployment.event_count().await;
    assert!(events_mallory > events, "mallory's sign-in is recorded");
    let forged = attacker
        .post(
            "/consent",
            &[
                ("csrf", &consent.hidden("csrf")),
                ("request", &consent.hidden("request")),
                ("decision", "allow"),
            ],
        )
        .await;
    forged.assert_error_page("R46 consent form from another session");
    assert_eq!(
        f.deployment.event_count().await,
        events_mallory,
        "the forgery records nothing"
    );

    let account = person.get("/account").await;
    assert_page_headers(&account, "account page");
    let logout = person.get("/logout").await;
    assert_page_headers(&logout, "logout confirmation");
    assert!(
        logout.html.contains("Sign out?"),
        "without a hint, logout asks first"
    );
    let css = person.get("/assets/writ.css").await;
    assert_eq!(css.status, 200);

    // R45: an opaque origin is refused outright.
    let null_origin = Browser::page(
        person
            .http
            .post(person.base.clone() + "/authorize")
            .header("origin", "null")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(oauth::form(&params)),
    )
    .await;
    null_origin.assert_error_page("R45 Origin: null");
    // R8: no `next` redirector after sign-in.
    let fresh = Browser::new(&f.server);
    let page = fresh.get("/login?next=https://evil.example/").await;
    let done = fresh.sign_in(&page, "alice", browser::PASSWORD).await;
    assert_eq!(done.location().as_deref(), Some("/account"), "R8");
}

async fn sign_in_failures_issue_nothing_and_are_throttled(backend: Backend) {
    let f = fixture(
        backend,
        &["--auth-failure-limit", "3", "--auth-failure-window", "1m"],
    )
    .await;
    let person = Browser::new(&f.server);
    let params = request(&f.web.id, REDIRECT_URI);
    let login = person.authorize(&params).await;
    let sessions = || {
        f.deployment
            .count("SELECT count(*) FROM events WHERE event_type = 'SessionStarted'")
    };
    let failed = || {
        f.deployment
            .count("SELECT count(*) FROM events WHERE event_type = 'LoginFailed'")
    };

    let events = f.deployment.event_count().await;
    let unknown = person.sign_in(&login, "nobody", "whatever").await;
    assert_eq!(unknown.status, 401);
    assert!(
        unknown.is_login_again(),
        "the page comes back with a message"
    );
    assert_eq!(
        f.deployment.event_count().await,
        events,
        "an unknown name records nothing"
    );
    for attempt in 0..3 {
        let wrong = person.sign_in(&login, "alice", "not the password").await;
        assert_eq!(wrong.status, 401, "attempt {attempt}");
        assert!(wrong
            .header("set-cookie")
            .is_none_or(|c| !c.contains("writ_session")));
    }
    assert_eq!(
        failed().await,
        3,
        "each failure on a known account is recorded"
    );
    assert_eq!(sessions().await, 0, "a wrong password issues nothing");
    // R73: past the per-name limit a wrong password is 429; the right one
    // still signs in, whoever failed before.
    let throttled = person.sign_in(&login, "alice", "not the password").await;
    assert_eq!(throttled.status, 429, "past the limit");
    assert!(throttled.header("retry-after").is_some());
    assert_eq!(sessions().await, 0);
    let right = person.sign_in(&login, "alice", browser::PASSWORD).await;
    assert_eq!(right.status, 303, "the right password is never refused");
    assert_eq!(sessions().await, 1);
}

impl Page {
    fn is_login_again(&self) -> bool {
        self.html.contains("action=\"/login\"") && self.html.contains("role=\"alert\"")
    }
}

async fn failures_from_one_address_change_no_answer(backend: Backend) {
    let f = fixture(backend, &["--ip-failure-limit", "2"]).await;
    let person = Browser::new(&f.server);
    let login = person.authorize(&request(&f.web.id, REDIRECT_URI)).await;
    // Behind a proxy this address is everyone's (R73): past its limit,
    // attempts from it wait a little, and are answered as before.
    for name in ["nobody-1", "nobody-2", "nobody-3", "nobody-4"] {
        assert_eq!(person.sign_in(&login, name, "guess").await.status, 401);
    }
    let right = person.sign_in(&login, "alice", browser::PASSWORD).await;
    assert_eq!(right.status, 303, "the right password is never refused");
    assert_eq!(
        f.deployment
            .count("SELECT count(*) FROM events WHERE event_type = 'SessionStarted'")
            .await,
        1
    );
}

async fn a_stale_sign_in_form_is_refused(backend: Backend) {
    let f = fixture(backend, &["--authorization-request-ttl", "1s"]).await;
    let person = Browser::new(&f.server);
    let login = person.authorize(&request(&f.web.id, REDIRECT_URI)).await;
    let shown = Instant::now();
    // The form's configured lifetime is 1 s: wait it out, no longer.
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(shown.elapsed())).await;
    let events = f.deployment.event_count().await;
    let late = person.sign_in(&login, "alice", browser::PASSWORD).await;
    late.assert_error_page("a sign-in form past authorization_request_ttl");
    assert_eq!(late.status, 403);
    assert_eq!(f.deployment.event_count().await, events, "nothing recorded");
}

async fn an_https_issuer_sets_secure_cookies(backend: Backend) {
    // Behind the user's TLS proxy the issuer is https; cookies say Secure.
    let f = fixture(backend, &["--issuer", "https://login.example.com"]).await;
    let person = Browser::new(&f.server);
    let login = person.authorize(&request(&f.web.id, REDIRECT_URI)).await;
    assert!(login.is_login());
    let cookie = login.header("set-cookie").unwrap_or_default();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}
