//! The revocation stream end to end: `writ serve` on PostgreSQL publishing
//! to a real Kafka-protocol broker, and resource servers built on the
//! `writ-resource-server` crate with introspection off, so every rejection
//! comes from the stream.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use writ_infra::kafka::KafkaSettings;
use writ_resource_server::{Config, ResourceServer};

use crate::harness::{eventually, random_word, rounds, Backend, Deployment, Server};

use crate::oauth::{self, Api, Creds};
use crate::refresh::{password_app, user, PASSWORD};
use crate::split::metric;

const ISSUER: &str = "http://writ.test";

/// The broker the test script started (`WRIT_TEST_KAFKA`), and a topic of
/// this test's own.
pub(crate) fn kafka() -> KafkaSettings {
    let brokers = std::env::var("WRIT_TEST_KAFKA")
        .unwrap_or_else(|_| panic!("WRIT_TEST_KAFKA is not set: run the suite with `bash scripts/test`, which starts the broker"));
    let mut kafka = KafkaSettings::new(brokers);
    kafka.topic = format!("writ.revocations.{}", random_word(12));
    kafka.partitions = 2;
    kafka
}

/// The resource server's view of the topic Writ publishes to.
pub(crate) fn source(kafka: &KafkaSettings) -> writ_resource_server::feed::KafkaSource {
    writ_resource_server::feed::KafkaSource {
        client: kafka.client_config(),
        topic: kafka.topic.clone(),
    }
}

pub(crate) fn serve(deployment: &Deployment, kafka: &KafkaSettings) -> Server {
    let partitions = kafka.partitions.to_string();
    deployment.serve_with(&[
        "--issuer",
        ISSUER,
        "--kafka-brokers",
        &kafka.brokers,
        "--kafka-topic",
        &kafka.topic,
        "--kafka-partitions",
        &partitions,
    ])
}

/// A resource server for tokens meant for `audience`, fed by the topic,
/// without introspection; ready once it has read what the topic held.
pub(crate) async fn resource_server(
    writ: &Server,
    kafka: &KafkaSettings,
    audience: &str,
) -> ResourceServer {
    let mut config = Config::new(ISSUER, audience);
    config.jwks_url = writ.url("/jwks");
    let server = ResourceServer::new(config);
    tokio::spawn(writ_resource_server::feed::follow_kafka(
        server.clone(),
        source(kafka),
        format!("rs-{}", random_word(8)),
    ));
    tokio::time::timeout(Duration::from_secs(30), server.caught_up())
        .await
        .unwrap_or_else(|_| panic!("the resource server did not catch up with {}", kafka.topic));
    server
}

/// What most stream tests start from: PostgreSQL, the resource server's
/// client (`api_identity`), a client whose tokens are meant for it
/// (`service`), and `writ serve` publishing to a topic of the test's own.
pub(crate) struct Stage {
    pub deployment: Deployment,
    pub api_identity: Creds,
    pub service: Creds,
    pub kafka: KafkaSettings,
    pub writ: Server,
    pub api: Api,
}

impl Stage {
    pub(crate) async fn new() -> Self {
        let deployment = Deployment::with_keys(Backend::Postgres).await;
        let api_identity = oauth::client(&deployment, &[]);
        let service = oauth::client(&deployment, &["--audience", &api_identity.id]);
        let kafka = kafka();
        let writ = serve(&deployment, &kafka);
        let api = Api::new(&writ);
        Self {
            deployment,
            api_identity,
            service,
            kafka,
            writ,
            api,
        }
    }
}

async fn accepted(server: &ResourceServer, token: &str) -> bool {
    server.authenticate(token).await.is_ok()
}

/// Messages on the topic, read from the start until `count` distinct ones
/// (by cursor) arrived; duplicates are kept, in arrival order.
pub(crate) async fn messages(kafka: &KafkaSettings, count: usize) -> Vec<serde_json::Value> {
    messages_until(kafka, |_, distinct| distinct >= count).await
}

/// Messages on the topic, read from the start until `done` (given them and
/// how many distinct cursors they hold) says so.
pub(crate) async fn messages_until(
    kafka: &KafkaSettings,
    done: impl Fn(&[serde_json::Value], usize) -> bool,
) -> Vec<serde_json::Value> {
    let consumer: StreamConsumer = kafka
        .client_config()
        .set("group.id", format!("check-{}", random_word(8)))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    consumer
        .subscribe(&[&kafka.topic])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let mut distinct = std::collections::HashSet::new();
    while !done(&seen, distinct.len()) {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("the topic went quiet after {} messages", seen.len()))
            .unwrap_or_else(|e| panic!("{e}"));
        let body: serde_json::Value =
            serde_json::from_slice(message.payload().unwrap_or_default()).unwrap_or_default();
        let key = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        let expected_key = ["gid", "client_id", "sub"]
            .iter()
            .find_map(|field| body[field].as_str().map(str::to_owned));
        assert_eq!(key, expected_key, "keyed by gid, else client_id, else sub");
        distinct.insert(body["cursor"].as_str().unwrap_or_default().to_owned());
        seen.push(body);
    }
    seen
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Kafka: `bash scripts/test` starts them and runs this"]
async fn a_revoked_token_is_rejected_from_the_stream_alone() {
    let Stage {
        deployment: _deployment,
        api_identity,
        service,
        kafka,
        writ,
        api,
    } = Stage::new().await;
    let server = resource_server(&writ, &kafka, &api_identity.id).await;

    let (revoked, kept) = (
        api.client_credentials(&service).await,
        api.client_credentials(&service).await,
    );
    assert!(
        accepted(&server, &revoked).await,
        "a fresh token is accepted"
    );
    assert_eq!(api.revoke(&service, &revoked).await.status, 200);
    eventually(
        "the resource server to reject the revoked token",
        || async { (!accepted(&server, &revoked).await).then_some(()) },
    )
    .await;
    assert!(accepted(&server, &kept).await, "only the revoked token");
    assert_eq!(server.introspection_calls(), 0);
    let served = api.text("/metrics").await.unwrap_or_default();
    assert!(
        served.contains("route=\"/revoke\""),
        "Writ counts its routes"
    );
    assert!(
        !served.contains("route=\"/introspect\""),
        "nobody asked Writ to introspect"
    );

    let message = messages(&kafka, 1).await.remove(0);
    // A JWT access token is revoked alone (RFC 7009 §2.1), by its jti.
    assert_eq!(message["type"], "token_revoked");
    assert_eq!(message["client_id"], service.id.as_str());
    assert_eq!(message["jtis"].as_array().map(Vec::len), Some(1));
    crate::schema::assert_valid(&message);
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Kafka: `bash scripts/test` starts them and runs this"]
async fn client_and_account_disable_reject_their_tokens_and_only_those() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let api_identity = oauth::client(&deployment, &[]);
    let (disabled, other) = (
        oauth::client(&deployment, &["--audience", &api_identity.id]),
        oauth::client(&deployment, &["--audience", &api_identity.id]),
    );
    let app = password_app(&deployment, &["--audience", &api_identity.id]);
    user(&deployment, "alice");
    user(&deployment, "bob");
    let kafka = kafka();
    let writ = serve(&deployment, &kafka);
    let api = Api::new(&writ);
    let server = resource_server(&writ, &kafka, &api_identity.id).await;
    let token_of = |creds: Creds| {
        let api = &api;
        async move { api.client_credentials(&creds).await }
    };
    let (of_disabled, of_other) = (token_of(disabled.clone()).await, token_of(other).await);
    let person = |name: &'static str| {
        let (api, app) = (&api, &app);
        async move {
            let reply = api.password(app, name, PASSWORD).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply.field("access_token")
        }
    };
    let (of_alice, of_bob) = (person("alice").await, person("bob").await);
    for token in [&of_disabled, &of_other, &of_alice, &of_bob] {
        assert!(accepted(&server, token).await);
    }

    deployment
        .writ(&["client", "disable", &disabled.id])
        .success();
    deployment.writ(&["user", "disable", "alice"]).success();
    eventually("both disables to reach the resource server", || async {
        (!accepted(&server, &of_disabled).await && !accepted(&server, &of_alice).await)
            .then_some(())
    })
    .await;
    assert!(accepted(&server, &of_other).await, "another client's token");
    assert!(accepted(&server, &of_bob).await, "another person's token");
    for message in messages(&kafka, 2).await {
        crate::schema::assert_valid(&message);
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Kafka: `bash scripts/test` starts them and runs this"]
async fn a_resource_server_started_late_rejects_every_live_revoked_token_before_serving() {
    let Stage {
        deployment: _deployment,
        api_identity,
        service,
        kafka,
        writ,
        api,
    } = Stage::new().await;
    let tokens = std::sync::Mutex::new(Vec::new());
    rounds(100, 8, |_| async {
        let token = api.client_credentials(&service).await;
        assert_eq!(api.revoke(&service, &token).await.status, 200);
        tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(token);
    })
    .await;
    eventually("the publisher to send all 100", || async {
        (metric(&api, "writ_revocations_published").await? >= 100.0).then_some(())
    })
    .await;

    let server = resource_server(&writ, &kafka, &api_identity.id).await;
    let tokens = tokens.into_inner().unwrap_or_default();
    for token in &tokens {
        assert!(
            !accepted(&server, token).await,
            "F14: rejected as soon as it is ready"
        );
    }
    assert!(accepted(&server, &api.client_credentials(&service).await).await);
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Kafka: `bash scripts/test` starts them and runs this"]
async fn writ_warns_at_start_when_the_topic_would_drop_live_revocations() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let mut kafka = kafka();
    // Made beforehand by someone else, keeping one minute: shorter than the
    // five-minute access tokens.
    kafka.retention = Duration::from_secs(60);
    kafka.ensure_topic().await.unwrap_or_else(|e| panic!("{e}"));
    let writ = serve(&deployment, &kafka);
    let warned = || {
        writ.log_lines()
            .iter()
            .any(|line| line.contains("may drop revocations") && line.contains("shorter than"))
    };
    eventually("the retention warning", || async { warned().then_some(()) }).await;

    let mut roomy = self::kafka();
    roomy.brokers = kafka.brokers.clone();
    let writ = serve(&deployment, &roomy);
    assert!(Api::new(&writ).status("/readyz").await == 200);
    assert!(
        !writ
            .log_lines()
            .iter()
            .any(|line| line.contains("may drop revocations")),
        "a topic Writ created with a week's retention draws no warning"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Kafka: `bash scripts/test` starts them and runs this"]
async fn the_split_projector_publishes_what_a_separate_command_api_commits() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let api_identity = oauth::client(&deployment, &[]);
    let service = oauth::client(&deployment, &["--audience", &api_identity.id]);
    let kafka = kafka();
    let partitions = kafka.partitions.to_string();
    let command = crate::split::start(&deployment, "command-api", &[]);
    let query = crate::split::start(&deployment, "query-api", &[]);
    let projector = crate::split::start(
        &deployment,
        "projector",
        &[
            "--kafka-brokers",
            &kafka.brokers,
            "--kafka-topic",
            &kafka.topic,
            "--kafka-partitions",
            &partitions,
        ],
    );
    let server = resource_server(&query, &kafka, &api_identity.id).await;
    let api = Api::new(&command);
    let token = api.client_credentials(&service).await;
    assert!(accepted(&server, &token).await);
    assert_eq!(api.revoke(&service, &token).await.status, 200);
    eventually(
        "the projector's publisher to deliver the revocation",
        || async { (!accepted(&server, &token).await).then_some(()) },
    )
    .await;
    assert_eq!(
        metric(&Api::new(&projector), "writ_revocation_publisher_active").await,
        Some(1.0)
    );
    assert_eq!(
        metric(&api, "writ_revocation_publisher_active").await,
        None,
        "the command API publishes nothing"
    );
}
