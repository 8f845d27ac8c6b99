//! Projector throughput and lag on PostgreSQL, with the release binaries:
//!
//! 1. Catch-up: N events (default 1,000,000; half login outcomes, half
//!    grant events) are bulk-inserted into a fresh database in one
//!    statement, which measures this machine's bulk-insert rows/s; then
//!    `writ projector` starts and is timed until every projection (the
//!    audit index and the policies) has passed the last event.
//! 2. Steady state: `writ command-api` and `writ projector`; client
//!    credentials at 70 % of the measured maximum while the newest
//!    committed position is sampled every 10 ms and timed until the
//!    projector's checkpoint passes it (lag p50/p99, 10 ms resolution).
//!
//!   cargo build --release -p writ-cli -p writ-tests --bins
//!   WRIT_TEST_POSTGRES=postgres://… target/release/bench-projector [EVENTS]
//!
//! `EVENTS` 0 measures the steady state alone.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use writ_store::statement::Statement;
use writ_store::{Conn, Db, Target};
use writ_tests::load::{self, Target as LoadTarget};
use writ_tests::writ_process::{self, Deployment, Server};

type Failure = Box<dyn std::error::Error>;

const BULK: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, hash)
SELECT CASE WHEN i % 2 = 0 THEN 'LoginDay' ELSE 'Grant' END,
       CASE WHEN i % 2 = 0 THEN 'account-' || i || '/2026-01-01' ELSE 'grant-' || i END,
       1,
       CASE WHEN i % 2 = 0 THEN 'LoginSucceeded' ELSE 'AccessTokenIssued' END,
       '1.0',
       CASE WHEN i % 2 = 0
         THEN json_build_object('LoginSucceeded', json_build_object('sub', 'sub-' || i, 'at', '2026-01-01T00:00:00Z'))
         ELSE json_build_object('AccessTokenIssued', json_build_object('jti', 'jti-' || i, 'token_hash', NULL, 'scopes', json_build_array('read'),
              'issued_at', '2026-01-01T00:00:00Z', 'expires_at', '2026-01-01T00:05:00Z'))
       END,
       '{\"actor\":\"bench\"}'::json,
       md5(i::text)
FROM generate_series(1, $1) AS i";

async fn start(deployment: &Deployment, process: &str) -> Result<Server, Failure> {
    Ok(deployment.start(&[
        process,
        "--listen",
        "127.0.0.1:0",
        "--issuer",
        "http://bench.writ.test",
    ])?)
}

async fn catch_up(binary: &std::path::Path, events: i64) -> Result<(), Failure> {
    let (url, _dir, deployment) = writ_process::fresh_postgres_deployment(binary).await?;
    deployment.run(&["migrate"])?;
    let db = Db::connect_postgres(&url, 2).await.map(Db::Postgres)?;
    let inserted = Instant::now();
    let mut conn = Conn::connect(&Target::Postgres(url.clone())).await?;
    conn.execute(&[Statement::new(BULK).int(events)]).await?;
    let insert_secs = inserted.elapsed().as_secs_f64();
    let last = db
        .scalar_i64(&Statement::new("SELECT max(position) FROM events"))
        .await?;
    println!(
        "bulk insert: {events} events in {insert_secs:.2} s = {:.0} rows/s (one INSERT … SELECT generate_series)",
        events as f64 / insert_secs
    );
    let started = Instant::now();
    let projector = start(&deployment, "projector").await?;
    while !writ_process::projected_past(&db, last).await {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(1800) {
            return Err("the projector did not catch up in 30 minutes".into());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let rows = db
        .scalar_i64(&Statement::new("SELECT count(*) FROM audit_index"))
        .await?;
    println!(
        "catch-up: {events} events in {secs:.2} s = {:.0} events/s (audit index and policies; {rows} audit rows); ratio to bulk insert {:.2}",
        events as f64 / secs,
        (events as f64 / secs) / (events as f64 / insert_secs)
    );
    projector.stop();
    Ok(())
}

async fn steady_state(binary: &std::path::Path) -> Result<(), Failure> {
    let (url, _dir, deployment) = writ_process::fresh_postgres_deployment(binary).await?;
    let authorization = deployment
        .create_client(&["--name", "bench", "--scope", "read"])?
        .basic();
    let command = start(&deployment, "command-api").await?;
    let _projector = start(&deployment, "projector").await?;
    let target = LoadTarget {
        url: format!("{}/token", command.base),
        authorization,
        body: Arc::new(|_| "grant_type=client_credentials&scope=read".to_owned()),
        dpop: None,
    };
    let max = load::closed_loop(&target, 32, Duration::from_secs(5)).await;
    let rate = max.per_second() * 0.7;
    println!(
        "issuance maximum {:.0} req/s; steady state at {rate:.0} req/s (70 %)",
        max.per_second()
    );
    let db = Db::connect_postgres(&url, 2).await.map(Db::Postgres)?;
    let load = tokio::spawn(async move {
        load::constant_rate(&target, rate, 32, Duration::from_secs(10)).await
    });
    let mut waiting: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut lags = Vec::new();
    let newest = Statement::new("SELECT coalesce(max(position), 0) FROM events");
    let checkpoint = Statement::new(
        "SELECT coalesce(max(position), 0) FROM projector_checkpoints WHERE projection = 'audit_index'",
    );
    while !load.is_finished() {
        let position = db.scalar_i64(&newest).await?;
        if waiting.back().is_none_or(|(_, p)| *p < position) {
            waiting.push_back((Instant::now(), position));
        }
        let projected = db.scalar_i64(&checkpoint).await?;
        while waiting.front().is_some_and(|(_, p)| *p <= projected) {
            if let Some((seen, _)) = waiting.pop_front() {
                lags.push(seen.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = load.await?;
    println!(
        "steady state: {:.0} req/s served ({} ok, {} failed); projector lag over {}",
        stats.per_second(),
        stats.ok,
        stats.failed,
        load::spread(&mut lags, "samples"),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let events: i64 = writ_process::count_argument(1_000_000)?;
    let binary = writ_process::release_binary()?;
    println!("PostgreSQL with its defaults (synchronous_commit=on, fsync=on); release binaries");
    if events > 0 {
        catch_up(&binary, events).await?;
    }
    steady_state(&binary).await?;
    Ok(())
}
