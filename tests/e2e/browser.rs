//! A scripted browser over raw HTTP: its own cookie jar, no automatic
//! redirects, and helpers that fill Writ's sign-in and consent forms the
//! way a person would, so tests see every hop.

use std::collections::HashMap;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use crate::harness::{Deployment, Server};
use crate::oauth::{self, Creds};

/// RFC 7636 Appendix B's verifier and its S256 challenge.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9999/cb";
pub const LOGOUT_URI: &str = "http://127.0.0.1:9999/bye";
pub const PASSWORD: &str = "correct horse battery";

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub html: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn location(&self) -> Option<String> {
        self.header("location")
    }

    /// The value of a hidden form field.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .html
            .find(&marker)
            .map(|i| i + marker.len())
            .unwrap_or_else(|| panic!("no field {name} on the page: {}", self.html));
        let end = self.html[start..].find('"').unwrap_or(0) + start;
        html_unescape(&self.html[start..end])
    }

    pub fn is_login(&self) -> bool {
        self.status.is_success() && self.html.contains("action=\"/login\"")
    }

    pub fn is_consent(&self) -> bool {
        self.status.is_success() && self.html.contains("action=\"/consent\"")
    }

    /// An error page: 4xx or 5xx HTML and no redirect anywhere.
    pub fn assert_error_page(&self, what: &str) {
        assert!(
            self.status.is_client_error() || self.status.is_server_error(),
            "{what}: expected an error page, got {} {:?}",
            self.status,
            self.location()
        );
        assert!(
            self.location().is_none(),
            "{what}: an error page must not redirect"
        );
        assert!(
            self.header("content-type")
                .unwrap_or_default()
                .starts_with("text/html"),
            "{what}: error pages are HTML"
        );
    }

    /// The query of a 303 to the client's redirect URI.
    pub fn redirect_query(&self, to: &str) -> HashMap<String, String> {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.html);
        let location = self.location().unwrap_or_default();
        assert!(
            location.starts_with(to),
            "redirected to {location}, not {to}"
        );
        query_of(&location)
    }
}

fn html_unescape(raw: &str) -> String {
    raw.replace("&#43;", "+")
        .replace("&#47;", "/")
        .replace("&#61;", "=")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#x2B;", "+")
        .replace("&#x2F;", "/")
        .replace("&#x3D;", "=")
        .replace("&amp;", "&")
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
}

impl Browser {
    pub fn new(server: &Server) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_store(true)
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
            base: server.url(""),
        }
    }

    fn absolute(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    pub async fn page(request: reqwest::RequestBuilder) -> Page {
        let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            html: response.text().await.unwrap_or_default(),
        }
    }

    pub async fn get(&self, path_or_url: &str) -> Page {
        Self::page(self.http.get(self.absolute(path_or_url))).await
    }

    pub async fn post(&self, path: &str, params: &[(&str, &str)]) -> Page {
        Self::page(
            self.http
                .post(self.absolute(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(oauth::form(params)),
        )
        .await
    }

    pub async fn authorize(&self, params: &[(&str, &str)]) -> Page {
        self.get(&format!("/authorize?{}", oauth::form(params)))
            .await
    }

    /// Fills the sign-in form on `page`; returns the 303 (or the page again).
    pub async fn sign_in(&self, page: &Page, username: &str, password: &str) -> Page {
        assert!(
            page.is_login(),
            "not a sign-in page: {} {}",
            page.status,
            page.html
        );
        self.post(
            "/login",
            &[
                ("csrf", &page.hidden("csrf")),
                ("request", &page.hidden("request")),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Follows a 303 within Writ.
    pub async fn follow(&self, page: &Page) -> Page {
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
        self.get(&page.location().unwrap_or_default()).await
    }

    pub async fn decide(&self, page: &Page, decision: &str) -> Page {
        assert!(
            page.is_consent(),
            "not a consent page: {} {}",
            page.status,
            page.html
        );
        self.post(
            "/consent",
            &[
                ("csrf", &page.hidden("csrf")),
                ("request", &page.hidden("request")),
                ("decision", decision),
            ],
        )
        .await
    }

    /// Withdraws the consent given to `client_id` on the account page.
    pub async fn withdraw_consent(&self, client_id: &str) -> Page {
        let account = self.get("/account").await;
        self.post(
            "/account/consents",
            &[("csrf", &account.hidden("csrf")), ("client_id", client_id)],
        )
        .await
    }

    /// Sign in and allow, from the first authorization page to the 303
    /// back to the client; skips steps the server skips.
    pub async fn code_flow(&self, params: &[(&str, &str)], username: &str) -> Page {
        let mut page = self.authorize(params).await;
        if page.is_login() {
            let signed_in = self.sign_in(&page, username, PASSWORD).await;
            page = self.follow(&signed_in).await;
        }
        if page.is_consent() {
            page = self.decide(&page, "allow").await;
        }
        page
    }
}

/// A confidential web client for the code flow, with a logout URI.
pub fn web_client(deployment: &Deployment, extra: &[&str]) -> Creds {
    let mut args = vec![
        "--name",
        "Demo App",
        "--redirect-uri",
        REDIRECT_URI,
        "--post-logout-redirect-uri",
        LOGOUT_URI,
        "--scope",
        "openid profile email offline_access",
    ];
    args.extend_from_slice(extra);
    oauth::client(deployment, &args)
}

pub fn user(deployment: &Deployment, username: &str) {
    deployment
        .writ_with_stdin(
            &[
                "user",
                "create",
                "--username",
                username,
                "--email",
                &format!("{username}@example.com"),
                "--name",
                &format!("{username} Example"),
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
        .success();
}

/// The parameters of an ordinary OpenID Connect request with PKCE.
pub fn oidc_params<'a>(client_id: &'a str, state: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_URI),
        ("response_type", "code"),
        ("scope", "openid profile email offline_access"),
        ("state", state),
        ("nonce", "nonce-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

/// Redeems a code with the RFC 7636 verifier.
pub async fn redeem(api: &oauth::Api, creds: &Creds, code: &str) -> oauth::Reply {
    api.token(
        creds,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}
