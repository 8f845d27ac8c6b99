//! The demo's web app. It gets access tokens from Writ and calls the time
//! API with them, two ways:
//! - `GET /time`: as itself, with the client-credentials grant (client
//!   `web-app`), and shows the API's current time;
//! - `POST /epoch` (form `username`, `password`): for a user, with the
//!   password grant on the first-party client `1234`, and shows the API's
//!   epoch time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use clap::Parser;
use serde::Deserialize;
use tokio::sync::Mutex;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "WEB_APP_LISTEN", default_value = "127.0.0.1:9200")]
    listen: String,
    /// Where Writ's token endpoint is learnt.
    #[arg(long, env = "WRIT_DISCOVERY_URL", default_value = writ_examples::DEFAULT_DISCOVERY)]
    discovery_url: String,
    #[arg(long, env = "TIME_API_URL", default_value = "http://127.0.0.1:9100")]
    api_url: String,
    #[arg(long, env = "WEB_APP_CLIENT_ID", default_value = "web-app")]
    client_id: String,
    #[arg(long, env = "WEB_APP_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// The first-party client users sign in through (password grant).
    #[arg(long, env = "WEB_APP_USER_CLIENT_ID", default_value = "1234")]
    user_client_id: String,
    #[arg(long, env = "WEB_APP_USER_CLIENT_SECRET", hide_env_values = true)]
    user_client_secret: String,
}

struct App {
    args: Args,
    token_endpoint: String,
    http: reqwest::Client,
    /// The client-credentials token, reused until shortly before it expires.
    machine_token: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

/// An answer for the browser or curl: plain text, so nothing from Writ or
/// the API is ever interpreted as markup.
fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

impl App {
    async fn token(
        &self,
        form: &[(&str, &str)],
        client: (&str, &str),
    ) -> Result<TokenResponse, Response> {
        let response = self
            .http
            .post(&self.token_endpoint)
            .basic_auth(client.0, Some(client.1))
            .form(form)
            .send()
            .await
            .map_err(|e| {
                text(
                    StatusCode::BAD_GATEWAY,
                    format!("Writ is unreachable: {e}\n"),
                )
            })?;
        if !response.status().is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(text(
                StatusCode::UNAUTHORIZED,
                format!("Writ refused a token: {body}\n"),
            ));
        }
        response.json().await.map_err(|e| {
            text(
                StatusCode::BAD_GATEWAY,
                format!("Writ's answer was not a token: {e}\n"),
            )
        })
    }

    async fn machine_token(&self) -> Result<String, Response> {
        let mut cached = self.machine_token.lock().await;
        if let Some((token, renew_at)) = cached.as_ref() {
            if Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let issued = self
            .token(
                &[("grant_type", "client_credentials"), ("scope", "time:read")],
                (&self.args.client_id, &self.args.client_secret),
            )
            .await?;
        let lifetime = Duration::from_secs(issued.expires_in);
        let renew_at = Instant::now()
            + lifetime
                .saturating_sub(Duration::from_secs(10))
                .max(lifetime / 2);
        *cached = Some((issued.access_token.clone(), renew_at));
        Ok(issued.access_token)
    }

    async fn call_api(&self, path: &str, token: &str, how: &str) -> Response {
        let response = match self
            .http
            .get(format!("{}{path}", self.args.api_url.trim_end_matches('/')))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!("the time API is unreachable: {e}\n"),
                )
            }
        };
        let status = response.status();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            text(
                StatusCode::OK,
                format!("{path} says {} ({how})\n", body.trim()),
            )
        } else {
            text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "{path} refused the token: {status} {}\n",
                    challenge.unwrap_or(body)
                ),
            )
        }
    }
}

async fn index() -> Html<&'static str> {
    Html(include_str!("web-app.html"))
}

async fn time(State(app): State<Arc<App>>) -> Response {
    match app.machine_token().await {
        Ok(token) => {
            app.call_api(
                "/current_time",
                &token,
                "client-credentials token of the web app",
            )
            .await
        }
        Err(refused) => refused,
    }
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

async fn epoch(State(app): State<Arc<App>>, Form(login): Form<Login>) -> Response {
    let issued = app
        .token(
            &[
                ("grant_type", "password"),
                ("username", &login.username),
                ("password", &login.password),
                ("scope", "epoch:read"),
            ],
            (&app.args.user_client_id, &app.args.user_client_secret),
        )
        .await;
    match issued {
        Ok(issued) => {
            let how = format!("password-grant token of {}", login.username);
            app.call_api("/epoch_time", &issued.access_token, &how)
                .await
        }
        Err(refused) => refused,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    writ_examples::init_logging();
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let token_endpoint = writ_examples::discover(&http, &args.discovery_url)
        .await?
        .token_endpoint;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let app = Arc::new(App {
        args,
        token_endpoint,
        http,
        machine_token: Mutex::default(),
    });
    let router = Router::new()
        .route("/", get(index))
        .route("/time", get(time))
        .route("/epoch", post(epoch))
        .with_state(app);
    println!("web-app listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(writ_examples::shutdown_signal())
        .await?;
    Ok(())
}
