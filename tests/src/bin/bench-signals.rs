//! Shared Signals delivery: the time from a revoke response to the SET
//! reaching a push receiver and a long-polling receiver, over N
//! revocations (default 1,000), then how many SETs per second one stream
//! delivers when it replays them all. `writ serve` (release build) runs
//! with its defaults, on SQLite, and on PostgreSQL too when
//! `WRIT_TEST_POSTGRES` names a server. Prints numbers; it is not a test.
//!
//!   cargo build --release -p writ-cli -p writ-tests --bins
//!   target/release/bench-signals [N]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use writ_tests::load;
use writ_tests::writ_process::{self, Deployment, Server};

type Failure = Box<dyn std::error::Error>;

/// When each grant's SET arrived, by grant id.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

const PASSWORD: &str = "correct horse battery";

/// The grant a SET is about (`sub_id.session.id`), read without checks.
fn session_of(set: &str) -> Option<String> {
    let payload = set.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["sub_id"]["session"]["id"]
        .as_str()
        .map(str::to_owned)
}

fn gid_of(access_token: &str) -> Option<String> {
    let payload = access_token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["gid"].as_str().map(str::to_owned)
}

/// A push receiver answering 202 to every SET, noting when each came.
async fn push_receiver(arrivals: Arrivals) -> Result<String, Failure> {
    let app = Router::new().route(
        "/ssf",
        post(move |body: String| {
            let arrivals = arrivals.clone();
            async move {
                if let Some(gid) = session_of(&body) {
                    let mut seen = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                    seen.entry(gid).or_insert_with(Instant::now);
                }
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{address}/ssf"))
}

struct Receiver {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Receiver {
    async fn call(&self, path: &str, body: Value) -> Result<Value, Failure> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("{path} answered {}", response.status()).into());
        }
        Ok(response.json().await?)
    }

    /// Long-polls for ever, acknowledging what it got, noting arrivals.
    async fn poll_forever(self, stream: String, arrivals: Arrivals) {
        let mut ack: Vec<String> = Vec::new();
        loop {
            let body = json!({"ack": ack, "maxEvents": 1000});
            let Ok(answer) = self.call(&format!("/ssf/poll/{stream}"), body).await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let now = Instant::now();
            ack.clear();
            for (jti, set) in answer["sets"].as_object().cloned().unwrap_or_default() {
                if let Some(gid) = set.as_str().and_then(session_of) {
                    let mut seen = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                    seen.entry(gid).or_insert(now);
                }
                ack.push(jti);
            }
        }
    }
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    println!("  {name}: {}", load::spread(&mut samples, "revocations"));
}

async fn arrived(arrivals: &Arrivals, gid: &str, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(10);
    loop {
        if let Some(at) = arrivals.lock().unwrap_or_else(|e| e.into_inner()).get(gid) {
            return at.saturating_duration_since(since);
        }
        if Instant::now() > deadline {
            return Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
}

fn client(deployment: &Deployment, args: &[&str]) -> Result<(String, String), Failure> {
    let mut all = vec!["--name", "bench"];
    all.extend_from_slice(args);
    let client = deployment.create_client(&all)?;
    let secret = client.secret().to_owned();
    Ok((client.id, secret))
}

async fn run(deployment: &Deployment, what: &str, revocations: usize) -> Result<(), Failure> {
    // `fresh_postgres_deployment` makes its own key file.
    if deployment.database_url.is_none() {
        deployment.run(&["keys", "init"])?;
    }
    let receiver = client(
        deployment,
        &[
            "--grant-type",
            "client_credentials",
            "--scope",
            "ssf.manage",
        ],
    )?;
    let app = client(
        deployment,
        &[
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid",
        ],
    )?;
    deployment.create_user("bench", PASSWORD, &[])?;
    let writ: Server = deployment.serve()?;
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/token", writ.base))
        .basic_auth(&receiver.0, Some(&receiver.1))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .json()
        .await?;
    let rx = Receiver {
        http: http.clone(),
        base: writ.base.clone(),
        token: token["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let (pushed, polled): (Arrivals, Arrivals) = (Arrivals::default(), Arrivals::default());
    let push_url = push_receiver(pushed.clone()).await?;
    let create_stream = |body: Value| {
        let rx = &rx;
        async move {
            let created = rx.call("/ssf/streams", body).await?;
            Ok::<String, Failure>(created["stream_id"].as_str().unwrap_or_default().to_owned())
        }
    };
    create_stream(json!({"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": push_url}}))
        .await?;
    let poll_stream = create_stream(json!({})).await?;
    tokio::spawn(
        Receiver {
            http: http.clone(),
            base: rx.base.clone(),
            token: rx.token.clone(),
        }
        .poll_forever(poll_stream, polled.clone()),
    );

    let (mut push_times, mut poll_times) = (Vec::new(), Vec::new());
    for _ in 0..revocations {
        let issued: Value = http
            .post(format!("{}/token", writ.base))
            .basic_auth(&app.0, Some(&app.1))
            .form(&[
                ("grant_type", "password"),
                ("username", "bench"),
                ("password", PASSWORD),
                ("scope", "openid"),
            ])
            .send()
            .await?
            .json()
            .await?;
        let gid = issued["access_token"]
            .as_str()
            .and_then(gid_of)
            .ok_or("no gid")?;
        let refresh = issued["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let revoked = http
            .post(format!("{}/revoke", writ.base))
            .basic_auth(&app.0, Some(&app.1))
            .form(&[
                ("token", refresh.as_str()),
                ("token_type_hint", "refresh_token"),
            ])
            .send()
            .await?;
        let answered = Instant::now();
        if !revoked.status().is_success() {
            return Err(format!("revoke answered {}", revoked.status()).into());
        }
        let (push, poll) = tokio::join!(
            arrived(&pushed, &gid, answered),
            arrived(&polled, &gid, answered)
        );
        push_times.push(push);
        poll_times.push(poll);
    }
    println!("{what}: revoke response → SET received");
    percentiles("push (RFC 8935)", push_times);
    percentiles("long poll (RFC 8936)", poll_times);

    // Replay: new streams from the start of the log take every SET again.
    let replayed: Arrivals = Arrivals::default();
    let replay_url = push_receiver(replayed.clone()).await?;
    let started = Instant::now();
    create_stream(json!({
        "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": replay_url},
        "start_after": "00000000000000000000",
    }))
    .await?;
    while replayed.lock().unwrap_or_else(|e| e.into_inner()).len() < revocations {
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the replay did not finish in 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let push_rate = revocations as f64 / started.elapsed().as_secs_f64();
    let poll_replay = create_stream(json!({"start_after": "00000000000000000000"})).await?;
    let started = Instant::now();
    let mut got = 0;
    let mut ack: Vec<String> = Vec::new();
    while got < revocations {
        let answer = rx
            .call(
                &format!("/ssf/poll/{poll_replay}"),
                json!({"ack": ack, "maxEvents": 1000, "returnImmediately": true}),
            )
            .await?;
        let sets = answer["sets"].as_object().cloned().unwrap_or_default();
        got += sets.len();
        ack = sets.keys().cloned().collect();
    }
    let poll_rate = got as f64 / started.elapsed().as_secs_f64();
    println!(
        "  one stream replaying {revocations} SETs: push {push_rate:.0} SETs/s (one POST each, in order), poll {poll_rate:.0} SETs/s (maxEvents 1000)"
    );
    writ.stop();
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let revocations: usize = writ_process::count_argument(1000)?;
    let binary = writ_process::release_binary()?;
    let dir = tempfile::tempdir()?;
    let embedded = Deployment {
        binary: binary.clone(),
        data_dir: dir.path().to_owned(),
        database_url: None,
    };
    run(
        &embedded,
        "embedded (SQLite, synchronous=FULL)",
        revocations,
    )
    .await?;
    if std::env::var("WRIT_TEST_POSTGRES").is_ok() {
        let (_url, _dir, on_postgres) = writ_process::fresh_postgres_deployment(&binary).await?;
        run(&on_postgres, "PostgreSQL", revocations).await?;
    }
    Ok(())
}
