//! PostgreSQL's read pool after the server dropped its connections, as a
//! restart or a failover does.

use std::time::Duration;

use writ_store::statement::Statement;
use writ_store::{Conn, Db, RowExt, Target, PING_AFTER_IDLE};
use writ_testing::fresh_postgres_database;

/// How many of the pool's connections the server dropped.
async fn drop_the_pools_connections(admin: &mut Conn) -> i64 {
    let dropped = admin
        .fetch_all(&Statement::new(
            "SELECT count(pg_terminate_backend(pid)) AS dropped FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    dropped
        .first()
        .and_then(|row| row.int("dropped"))
        .unwrap_or(0)
}

/// The read pool pings only a connection that sat idle (sqlx's ping on
/// every loan was a round trip per query). So a connection the server
/// dropped while it was busy fails one query and is replaced, and one that
/// sat idle is replaced before any query fails.
#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn the_read_pool_replaces_connections_the_server_dropped() {
    let url = fresh_postgres_database()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pool = Db::connect_postgres(&url, 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let db = Db::Postgres(pool);
    let mut admin = Conn::connect(&Target::Postgres(url))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let alive = Statement::new("SELECT 1");

    db.scalar_i64(&alive)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(drop_the_pools_connections(&mut admin).await >= 1);
    let mut failures = 0;
    while db.scalar_i64(&alive).await.is_err() {
        failures += 1;
        assert!(failures <= 2, "at most one failure per pooled connection");
    }

    db.scalar_i64(&alive)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(drop_the_pools_connections(&mut admin).await >= 1);
    tokio::time::sleep(PING_AFTER_IDLE + Duration::from_millis(100)).await;
    assert_eq!(db.scalar_i64(&alive).await.ok(), Some(1));
}
