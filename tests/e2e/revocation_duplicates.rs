//! Duplicates on the revocation stream are harmless: a publisher killed
//! after a send and before its checkpoint sends the slice again (F6), and
//! a consumer that reads the topic again from offset 0 (F9), leave the
//! resource server's state as it was, with no gap.

use sqlx::Connection;
use writ_resource_server::feed::follow_kafka;

use crate::harness::{eventually, random_word};
use crate::revocation_stream::{messages_until, resource_server, serve, source, Stage};
use crate::split::metric;

fn cursor_count(messages: &[serde_json::Value], cursor: &str) -> usize {
    messages
        .iter()
        .filter(|message| message["cursor"] == cursor)
        .count()
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Kafka: `bash scripts/test` starts them and runs this"]
async fn a_publisher_killed_between_send_and_checkpoint_resends_harmlessly() {
    let Stage {
        deployment,
        api_identity,
        service,
        kafka,
        writ,
        api,
    } = Stage::new().await;
    let server = resource_server(&writ, &kafka, &api_identity.id).await;
    let (first, second, kept) = (
        api.client_credentials(&service).await,
        api.client_credentials(&service).await,
        api.client_credentials(&service).await,
    );
    assert_eq!(api.revoke(&service, &first).await.status, 200);
    eventually("the first revocation to arrive", || async {
        server.authenticate(&first).await.is_err().then_some(())
    })
    .await;

    // The checkpoints' table locked without a transaction id, so the
    // global-order bound does not move and the publisher reads and sends,
    // then waits on its checkpoint: where it is killed.
    let url = deployment.database_url.clone().unwrap_or_default();
    let mut locker = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::raw_sql("BEGIN; LOCK TABLE projector_checkpoints IN EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(api.revoke(&service, &second).await.status, 200);
    eventually("the second revocation to arrive", || async {
        server.authenticate(&second).await.is_err().then_some(())
    })
    .await;
    let sent = messages_until(&kafka, |_, distinct| distinct >= 2).await;
    // Messages are keyed by grant, so the two may sit on different
    // partitions and arrive in either order; the second revocation's is
    // the later cursor (fixed width, so string order is log order).
    let second_cursor = sent
        .iter()
        .filter_map(|message| message["cursor"].as_str())
        .max()
        .unwrap_or_default()
        .to_owned();
    let (entries, applied) = (server.denied_entries(), server.messages_applied());
    // The process dies; its statements already sent would still commit once
    // the lock is released, so their sessions die with it, as they would
    // with the host.
    writ.kill();
    sqlx::raw_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut locker)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    locker.close().await.unwrap_or_else(|e| panic!("{e}"));

    let _writ = serve(&deployment, &kafka);
    // Both revocations' messages: partitions are read in either order, so
    // the duplicate may come before the first revocation's message.
    let received = messages_until(&kafka, |seen, distinct| {
        distinct >= 2 && cursor_count(seen, &second_cursor) >= 2
    })
    .await;
    assert_eq!(
        cursor_count(&received, &second_cursor),
        2,
        "sent again after the kill"
    );
    eventually("the resource server to apply the duplicate", || async {
        (server.messages_applied() > applied).then_some(())
    })
    .await;
    assert_eq!(
        server.denied_entries(),
        entries,
        "a duplicate changes nothing"
    );
    assert!(server.authenticate(&second).await.is_err());
    assert!(
        server.authenticate(&kept).await.is_ok(),
        "no more than before"
    );
    let distinct: std::collections::HashSet<_> = received
        .iter()
        .map(|message| message["cursor"].clone())
        .collect();
    assert_eq!(distinct.len(), 2, "no gap, nothing invented");
    for message in &received {
        crate::schema::assert_valid(message);
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Kafka: `bash scripts/test` starts them and runs this"]
async fn reading_the_topic_again_from_offset_zero_changes_nothing() {
    let Stage {
        deployment: _deployment,
        api_identity,
        service,
        kafka,
        writ,
        api,
    } = Stage::new().await;
    let mut revoked = Vec::new();
    for _ in 0..10 {
        let token = api.client_credentials(&service).await;
        assert_eq!(api.revoke(&service, &token).await.status, 200);
        revoked.push(token);
    }
    let kept = api.client_credentials(&service).await;
    eventually("the publisher to send all 10", || async {
        (metric(&api, "writ_revocations_published").await? >= 10.0).then_some(())
    })
    .await;
    let server = resource_server(&writ, &kafka, &api_identity.id).await;
    let (entries, applied) = (server.denied_entries(), server.messages_applied());
    assert_eq!(applied, 10);

    // A second consumer on the same deny-list reads everything from 0.
    let rewound = tokio::spawn(follow_kafka(
        server.clone(),
        source(&kafka),
        format!("rewound-{}", random_word(8)),
    ));
    eventually("the topic to be read again", || async {
        (server.messages_applied() >= 2 * applied).then_some(())
    })
    .await;
    rewound.abort();
    assert_eq!(server.denied_entries(), entries);
    for token in &revoked {
        assert!(server.authenticate(token).await.is_err());
    }
    assert!(server.authenticate(&kept).await.is_ok());
}
