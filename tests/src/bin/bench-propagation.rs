//! Revocation propagation: the time from a revoke response to a resource
//! server built on `writ-resource-server` rejecting the token, without
//! asking Writ. `writ serve` (release build) runs on PostgreSQL with a
//! Kafka-protocol broker (tansu, started here in memory); two resource
//! servers in this process follow the Kafka topic and the server-sent-event
//! feed; N tokens (default 1,000) are revoked one after another and each
//! resource server is polled every 100 µs until it rejects the token.
//!
//!   cargo build --release -p writ-cli -p writ-tests --bins
//!   WRIT_TEST_POSTGRES=postgres://… target/release/bench-propagation [N]
//!
//! `TANSU` names the broker binary (default `~/.cargo/bin/tansu`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use writ_infra::kafka::KafkaSettings;
use writ_resource_server::sse::{follow_sse, SseFeed};
use writ_resource_server::{Config, ResourceServer};
use writ_tests::writ_process::{self, Deployment};

type Failure = Box<dyn std::error::Error>;

const ISSUER: &str = "http://bench.writ.test";

struct Broker(std::process::Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker() -> Result<(Broker, String), Failure> {
    let tansu = std::env::var("TANSU").unwrap_or_else(|_| {
        format!(
            "{}/.cargo/bin/tansu",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut child = Command::new(tansu)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let broker = Broker(child);
    for line in BufReader::new(stdout).lines() {
        if line?.contains("ready in") {
            return Ok((broker, format!("127.0.0.1:{port}")));
        }
    }
    Err("tansu did not start".into())
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| {
        samples
            .get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{name}: {} revocations, p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        at(0.5),
        at(0.99),
        samples.last().copied().unwrap_or_default()
    );
}

async fn rejected_after(server: &ResourceServer, token: &str, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(10);
    while server.authenticate(token).await.is_ok() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    since.elapsed()
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let revocations: usize = writ_process::count_argument(1000)?;
    let binary = writ_process::release_binary()?;
    let (_broker, brokers) = start_broker()?;
    let url = writ_testing::fresh_postgres_database().await?;
    let dir = tempfile::tempdir()?;
    let deployment = Deployment {
        binary,
        data_dir: dir.path().to_owned(),
        database_url: Some(url),
    };
    deployment.run(&["keys", "init"])?;
    let created = |args: &[&str]| -> Result<(String, String), Failure> {
        let mut all = vec!["--json", "client", "create", "--name", "bench"];
        all.extend_from_slice(args);
        let output: serde_json::Value = serde_json::from_slice(&deployment.run(&all)?.stdout)?;
        let field = |name: &str| output[name].as_str().unwrap_or_default().to_owned();
        Ok((field("client_id"), field("client_secret")))
    };
    let api_identity = created(&["--revocation-feed"])?;
    let service = created(&["--audience", &api_identity.0])?;
    let mut kafka = KafkaSettings::new(brokers);
    kafka.partitions = 1;
    let writ = deployment.start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--issuer",
        ISSUER,
        "--kafka-brokers",
        &kafka.brokers,
        "--kafka-partitions",
        "1",
    ])?;
    println!(
        "writ serve (release) on PostgreSQL with its defaults; tansu in memory on {}",
        kafka.brokers
    );

    let resource_server = || {
        let mut config = Config::new(ISSUER, &api_identity.0);
        config.jwks_url = format!("{}/jwks", writ.base);
        ResourceServer::new(config)
    };
    let (over_kafka, over_sse) = (resource_server(), resource_server());
    let source = writ_resource_server::feed::KafkaSource {
        client: kafka.client_config(),
        topic: kafka.topic.clone(),
    };
    tokio::spawn(writ_resource_server::feed::follow_kafka(
        over_kafka.clone(),
        source,
        "bench".into(),
    ));
    tokio::spawn(follow_sse(
        over_sse.clone(),
        SseFeed {
            url: format!("{}/revocations", writ.base),
            client_id: api_identity.0.clone(),
            client_secret: api_identity.1.clone(),
        },
    ));
    tokio::time::timeout(Duration::from_secs(30), async {
        over_kafka.caught_up().await;
        over_sse.caught_up().await;
    })
    .await?;

    let http = reqwest::Client::new();
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", service.0, service.1))
    );
    let (mut kafka_times, mut sse_times) = (Vec::new(), Vec::new());
    for _ in 0..revocations {
        let issued: serde_json::Value = http
            .post(format!("{}/token", writ.base))
            .header("authorization", &basic)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?
            .json()
            .await?;
        let token = issued["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if over_kafka.authenticate(&token).await.is_err()
            || over_sse.authenticate(&token).await.is_err()
        {
            return Err("a fresh token was refused".into());
        }
        let revoked = http
            .post(format!("{}/revoke", writ.base))
            .header("authorization", &basic)
            .form(&[("token", token.as_str())])
            .send()
            .await?;
        let answered = Instant::now();
        if !revoked.status().is_success() {
            return Err(format!("revoke answered {}", revoked.status()).into());
        }
        let (by_kafka, by_sse) = tokio::join!(
            rejected_after(&over_kafka, &token, answered),
            rejected_after(&over_sse, &token, answered)
        );
        kafka_times.push(by_kafka);
        sse_times.push(by_sse);
    }
    percentiles("over Kafka", kafka_times);
    percentiles("over server-sent events", sse_times);
    println!(
        "introspection calls: {} (Kafka), {} (SSE)",
        over_kafka.introspection_calls(),
        over_sse.introspection_calls()
    );
    Ok(())
}
