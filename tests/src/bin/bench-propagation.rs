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
//! `WRIT_TEST_TANSU` names the broker binary (default `tansu` on the path).

use std::time::{Duration, Instant};

use writ_infra::kafka::KafkaSettings;
use writ_resource_server::sse::{follow_sse, SseFeed};
use writ_resource_server::{Config, ResourceServer};
use writ_tests::broker::Broker;
use writ_tests::load;
use writ_tests::writ_process::{self, Deployment};

type Failure = Box<dyn std::error::Error>;

const ISSUER: &str = "http://bench.writ.test";

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    println!("{name}: {}", load::spread(&mut samples, "revocations"));
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
    let broker = Broker::in_memory()?;
    let brokers = broker.brokers();
    let url = writ_testing::fresh_postgres_database().await?;
    let dir = tempfile::tempdir()?;
    let deployment = Deployment {
        binary,
        data_dir: dir.path().to_owned(),
        database_url: Some(url),
    };
    deployment.run(&["keys", "init"])?;
    let api_identity = deployment.create_client(&["--name", "bench", "--revocation-feed"])?;
    let service = deployment.create_client(&["--name", "bench", "--audience", &api_identity.id])?;
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
        let mut config = Config::new(ISSUER, &api_identity.id);
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
            client_id: api_identity.id.clone(),
            client_secret: api_identity.secret().to_owned(),
        },
    ));
    tokio::time::timeout(Duration::from_secs(30), async {
        over_kafka.caught_up().await;
        over_sse.caught_up().await;
    })
    .await?;

    let http = reqwest::Client::new();
    let basic = service.basic();
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
