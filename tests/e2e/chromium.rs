//! A real browser: Debian's headless Chromium driven through
//! chromedriver's W3C WebDriver API. Sign in → consent → redirect with a
//! code; Deny; the account page → withdraw → the token is inactive.
//! A device connected from the verification page with the keyboard only.
//! Screenshots are kept under `target/e2e-artifacts/` for people to look at.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browser::{self, query_of};
use crate::harness::{Backend, Deployment};
use crate::oauth::Api;

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn binary(names: &[&str]) -> String {
    names
        .iter()
        .find(|name| {
            Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|name| (*name).to_owned())
        .unwrap_or_else(|| panic!("none of {names:?} is installed; the test script installs chromium and chromium-driver"))
}

impl Driver {
    async fn start() -> Self {
        let port = free_port();
        let child = Command::new(binary(&["chromedriver"]))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while driver
            .http
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply: Value = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            reply["value"]["error"].is_null(),
            "WebDriver {path}: {reply}"
        );
        reply["value"].clone()
    }

    async fn session(&self) -> Session<'_> {
        let chromium = binary(&["chromium", "chromium-browser"]);
        let chromium = String::from_utf8_lossy(
            &Command::new("sh")
                .args(["-c", &format!("command -v {chromium}")])
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default(),
        )
        .trim()
        .to_owned();
        let value = self
            .call(
                reqwest::Method::POST,
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=900,820"]
                    }
                }}})),
            )
            .await;
        Session {
            driver: self,
            id: value["sessionId"].as_str().unwrap_or_default().to_owned(),
        }
    }
}

struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.id), body)
            .await
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element matching `css`, waiting for it to appear.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let reply: Value = self
                .driver
                .http
                .post(format!("{}/session/{}/element", self.driver.url, self.id))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .json()
                .await
                .unwrap_or_default();
            if let Some(id) = reply["value"]
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
                .filter(|_| reply["value"]["error"].is_null())
            {
                return id.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits until the page's source contains `text`.
    async fn wait_for_text(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let source = self.call(reqwest::Method::GET, "/source", None).await;
            if source.as_str().is_some_and(|html| html.contains(text)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} never showed on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = self.url().await;
            if url.starts_with(prefix) {
                return url;
            }
            assert!(Instant::now() < deadline, "the browser stayed at {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = STANDARD
            .decode(png.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = artifacts();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap_or_else(|e| panic!("{e}"));
    }

    async fn close(self) {
        self.driver
            .call(
                reqwest::Method::DELETE,
                &format!("/session/{}", self.id),
                None,
            )
            .await;
    }
}

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-artifacts")
}

/// The client's redirect target: a one-page app that just says "ok", so
/// the browser lands on a real page.
async fn callback_app() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let body = "<!doctype html><title>Demo App</title><p>Back at the app.</p>";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://{address}/cb")
}

#[tokio::test]
#[ignore = "needs Chromium: `bash scripts/test` installs it and runs this"]
async fn a_person_signs_in_consents_denies_and_withdraws_in_chromium() {
    let callback = callback_app().await;
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let app = crate::oauth::client(
        &deployment,
        &[
            "--name",
            "Demo App",
            "--redirect-uri",
            &callback,
            "--scope",
            "openid profile email",
        ],
    );
    browser::user(&deployment, "alice");
    let server = deployment.serve();
    let api = Api::new(&server);
    let driver = Driver::start().await;
    let session = driver.session().await;
    let authorize = |state: &str| {
        server.url(&format!(
            "/authorize?{}",
            crate::oauth::form(&[
                ("client_id", &app.id),
                ("redirect_uri", &callback),
                ("response_type", "code"),
                ("scope", "openid profile email"),
                ("state", state),
                ("code_challenge", browser::CHALLENGE),
                ("code_challenge_method", "S256"),
            ])
        ))
    };

    session.open(&authorize("first")).await;
    session.type_into("#username", "alice").await;
    session.type_into("#password", browser::PASSWORD).await;
    session.screenshot("01-sign-in").await;
    session.click("#sign-in").await;
    session.find("#allow").await;
    session.screenshot("02-consent").await;
    session.click("#deny").await;
    let denied = query_of(&session.wait_for_url(&callback).await);
    assert_eq!(
        denied.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(denied.get("state").map(String::as_str), Some("first"));

    session.open(&authorize("second")).await;
    session.click("#allow").await;
    let back = query_of(&session.wait_for_url(&callback).await);
    assert_eq!(back.get("state").map(String::as_str), Some("second"));
    let reply = api
        .token(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", &back["code"]),
                ("redirect_uri", &callback),
                ("code_verifier", browser::VERIFIER),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let access = reply.field("access_token");
    assert!(api.is_active(&app, &access).await);

    session.open(&server.url("/account")).await;
    session
        .find("button[aria-label='Remove access for Demo App']")
        .await;
    session.screenshot("03-account").await;
    session
        .click("button[aria-label='Remove access for Demo App']")
        .await;
    session.find("#no-apps").await;
    session.screenshot("04-access-removed").await;
    assert!(
        !api.is_active(&app, &access).await,
        "withdrawn in the browser, inactive at once"
    );
    session.close().await;
}

/// WebDriver's Enter key.
const ENTER: &str = "\u{E007}";

#[tokio::test]
#[ignore = "needs Chromium: `bash scripts/test` installs it and runs this"]
async fn a_person_connects_a_device_with_the_keyboard_alone_in_chromium() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let tv = crate::device_flow::device_client(&deployment);
    browser::user(&deployment, "alice");
    let server = deployment.serve_with(&["--device-poll-interval", "1s"]);
    let api = Api::new(&server);
    let started = crate::device_flow::start(&api, &tv, "openid profile").await;
    assert_eq!(started.status, 200, "{}", started.body);
    let user_code = started.field("user_code");
    let driver = Driver::start().await;
    let session = driver.session().await;

    // Typed as people do: lower case, a space for the dash, then Enter.
    session.open(&started.field("verification_uri")).await;
    let typed = user_code.to_lowercase().replace('-', " ");
    session.type_into("#user_code", &typed).await;
    session.screenshot("05-device-code").await;
    session.type_into("#user_code", ENTER).await;
    session.type_into("#username", "alice").await;
    session
        .type_into("#password", &format!("{}{ENTER}", browser::PASSWORD))
        .await;
    session.find("#allow").await;
    session.wait_for_text(&user_code).await;
    session.wait_for_text("Living Room TV").await;
    session.screenshot("06-device-confirm").await;
    session.type_into("#allow", ENTER).await;
    session.wait_for_text("Device connected").await;
    session.screenshot("07-device-connected").await;
    session.close().await;

    let tokens = crate::device_flow::poll(&api, &tv, &started.field("device_code")).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.field("scope"), "openid profile");
}
