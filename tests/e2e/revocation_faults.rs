//! The revocation stream when the broker is stopped for 30 s (F5) or
//! crashes in the middle of a stream (F16), on durable storage: the events
//! table is the outbox, so an outage delays revocations and loses none, and
//! each key's revocations arrive in log order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{eventually, rounds, Backend, Deployment};
use crate::oauth::{Api, Creds};
use crate::refresh::{password_app, user, PASSWORD};
use crate::revocation_stream::{kafka, messages, serve};
use crate::split::metric;
use writ_tests::broker::Broker;

/// Signs alice in and revokes the access token, then the refresh token:
/// two revocations (token, then grant) under one key, the grant id.
async fn two_revocations(api: &Api, app: &Creds) {
    let login = api.password(app, "alice", PASSWORD).await;
    assert_eq!(login.status, 200, "issuance works whatever the broker does");
    for token in [login.field("access_token"), login.field("refresh_token")] {
        assert_eq!(api.revoke(app, &token).await.status, 200);
    }
}

/// Every revocation in the log arrived, and each key's in log order.
async fn assert_all_delivered_in_order(deployment: &Deployment, received: &[serde_json::Value]) {
    for message in received {
        crate::schema::assert_valid(message);
    }
    let logged = deployment
        .count("SELECT count(*) FROM events WHERE event_type IN ('AccessTokenRevoked', 'GrantRevoked')")
        .await;
    let cursors: HashSet<&str> = received
        .iter()
        .filter_map(|message| message["cursor"].as_str())
        .collect();
    assert_eq!(cursors.len() as i64, logged, "none lost");
    // Resent slices may repeat messages; first arrivals keep log order.
    let mut first_seen: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut seen = HashSet::new();
    for message in received {
        let cursor = message["cursor"].as_str().unwrap_or_default();
        if seen.insert(cursor) {
            first_seen
                .entry(message["gid"].as_str().unwrap_or_default())
                .or_default()
                .push(cursor);
        }
    }
    for (key, cursors) in first_seen {
        assert!(
            cursors.windows(2).all(|w| w[0] < w[1]),
            "{key}: {cursors:?} out of order"
        );
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Kafka: `bash scripts/test` starts them and runs this"]
async fn revocations_made_while_the_broker_is_stopped_all_arrive_after_it_restarts() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let app = password_app(&deployment, &[]);
    user(&deployment, "alice");
    let mut broker = Broker::durable().unwrap_or_else(|e| panic!("{e}"));
    let mut kafka = kafka();
    kafka.brokers = broker.brokers();
    let writ = serve(&deployment, &kafka);
    let api = Api::new(&writ);
    two_revocations(&api, &app).await;
    eventually("the first revocations to be published", || async {
        (metric(&api, "writ_revocations_published").await? >= 2.0).then_some(())
    })
    .await;

    broker.stop();
    let stopped = Instant::now();
    rounds(100, 8, |_| two_revocations(&api, &app)).await;
    eventually("the unpublished revocations to show their age", || async {
        (metric(&api, "writ_revocations_oldest_unpublished_seconds").await? > 0.0).then_some(())
    })
    .await;
    // The outage outlasts the producer's 10 s delivery timeout, so the
    // publisher's own resending is what delivers them.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed())).await;
    broker.start_again().unwrap_or_else(|e| panic!("{e}"));

    let received = messages(&kafka, 202).await;
    assert_all_delivered_in_order(&deployment, &received).await;
    eventually("the unpublished age to return to zero", || async {
        (metric(&api, "writ_revocations_oldest_unpublished_seconds").await? == 0.0).then_some(())
    })
    .await;
}

/// F16: the broker crashes and comes back on its durable storage in the
/// middle of a stream of revocations.
#[tokio::test]
#[ignore = "needs PostgreSQL and Kafka: `bash scripts/test` starts them and runs this"]
async fn revocations_streamed_across_a_broker_crash_and_restart_all_arrive_in_order() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let app = password_app(&deployment, &[]);
    user(&deployment, "alice");
    let broker = Broker::durable().unwrap_or_else(|e| panic!("{e}"));
    let mut kafka = kafka();
    kafka.brokers = broker.brokers();
    let writ = serve(&deployment, &kafka);
    let api = Api::new(&writ);
    const PAIRS: usize = 300;
    let done = AtomicUsize::new(0);

    let stream = rounds(PAIRS, 2, |_| async {
        two_revocations(&api, &app).await;
        done.fetch_add(1, Ordering::Relaxed);
    });
    let crash = async {
        eventually("the stream to be under way", || async {
            (done.load(Ordering::Relaxed) >= 50).then_some(())
        })
        .await;
        let published = metric(&api, "writ_revocations_published").await;
        // Off this task, so revocations go on while the broker is down.
        let restarted = tokio::task::spawn_blocking(move || {
            let mut broker = broker;
            broker.stop();
            std::thread::sleep(Duration::from_secs(1));
            broker.start_again().unwrap_or_else(|e| panic!("{e}"));
            broker
        });
        let broker = restarted.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            done.load(Ordering::Relaxed) < PAIRS,
            "the restart fell inside the stream"
        );
        (published, broker)
    };
    let ((), (published_before, _broker)) = tokio::join!(stream, crash);
    assert!(
        published_before.is_some_and(|count| count > 0.0),
        "some were published before the crash"
    );

    let received = messages(&kafka, 2 * PAIRS).await;
    assert_all_delivered_in_order(&deployment, &received).await;
}
