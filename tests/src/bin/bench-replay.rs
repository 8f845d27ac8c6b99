//! Replay and audit over a large log on PostgreSQL, with the release
//! binary as a separate process:
//!
//! 1. N events (default 1,000,000) are appended through the executor:
//!    client-credentials grants, one in five revoked, one in a thousand (and each worker's first)
//!    with the scope `reports:read`; `writ projector` then indexes them.
//! 2. The machine's bulk-insert rows/s: N rows shaped like the `grants`
//!    table, in one `INSERT … SELECT generate_series`. Before it and
//!    before the replay, the log is vacuumed and a checkpoint written, as
//!    pgbench does, and whether the connections use TLS is printed.
//! 3. `writ replay --into bench` (every projection into a snapshot):
//!    events/s and rows written per event; then `writ replay --verify`.
//! 4. `writ audit seal` and `writ audit verify` over the whole log.
//! 5. `GET /audit/who-can?scope=reports:read` on `writ query-api`: latency.
//!
//!   cargo build --release -p writ-cli -p writ-tests --bins
//!   WRIT_TEST_POSTGRES=postgres://… target/release/bench-replay [EVENTS]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use writ_domain::grant::{Grant, GrantCommand, TokenRequest};
use writ_domain::values::{ScopeSet, SecretHash};
use writ_store::executor::Stream;
use writ_store::schema::REBUILDABLE_TABLES;
use writ_store::statement::Statement;
use writ_store::{Conn, Db, Target, DEFAULT_MAX_BATCH};
use writ_store::{Executor, Metadata, Store};
use writ_tests::writ_process::{self, Deployment};

type Failure = Box<dyn std::error::Error>;

const WORKERS: usize = 32;
const AUDIT_TOKEN: &str = "bench-audit-token";

/// Appends grants until the log holds at least `events` events.
async fn populate(url: &str, events: u64) -> Result<(), Failure> {
    let store = Store::open_postgres(url, DEFAULT_MAX_BATCH).await?;
    let executor = Arc::new(Executor::new(store.clone(), writ_store::services::system()));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (executor, done) = (executor.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0_u64;
            while !done.load(Ordering::Relaxed) {
                n += 1;
                let gid = format!("bench-{worker}-{n}");
                let scope = if n % 1000 == 1 { "reports:read" } else { "api" };
                let issue = GrantCommand::GrantClientCredentials {
                    gid: gid.clone(),
                    client_id: format!("client-{}", n % 50),
                    scopes: ScopeSet::parse(scope).unwrap_or_default(),
                    audience: vec![],
                    tokens: TokenRequest {
                        access_ttl_secs: 300,
                        opaque_access_hash: Some(SecretHash(format!("{gid:0>64}"))),
                        refresh: None,
                        audience: None,
                        dpop_jkt: None,
                        status: None,
                    },
                };
                let metadata = Metadata::cli("bench");
                executor
                    .execute_with::<Grant>(&gid, issue, &metadata, vec![], Stream::New)
                    .await
                    .map_err(|e| format!("issue: {e:?}"))?;
                if n % 5 == 0 {
                    let revoke = GrantCommand::Revoke {
                        by: "bench".into(),
                        reason: "bench".into(),
                    };
                    executor
                        .execute_with::<Grant>(&gid, revoke, &metadata, vec![], Stream::Existing)
                        .await
                        .map_err(|e| format!("revoke: {e:?}"))?;
                }
            }
            Ok::<(), String>(())
        }));
    }
    let metrics = store.metrics();
    while metrics.events_committed.get() < events {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if workers.iter().any(|w| w.is_finished()) {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await??;
    }
    let appended = metrics.events_committed.get();
    println!(
        "log: {appended} events appended in {:.0} s through the executor (grants; one in five revoked)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Vacuums the log and writes a checkpoint, as pgbench vacuums before it
/// measures: otherwise the autovacuum and checkpoint that the populate (or
/// the bulk-insert probe) set off run inside the next measurement.
async fn settle(url: &str) -> Result<(), Failure> {
    let mut conn = Conn::connect(&Target::Postgres(url.to_owned())).await?;
    for statement in ["VACUUM (ANALYZE) events", "CHECKPOINT"] {
        if let Err(err) = conn.batch(statement).await {
            println!("{statement} failed ({err}); measuring without it");
        }
    }
    Ok(())
}

/// Runs a `writ` subcommand to completion; its stdout and how long it took.
fn timed(deployment: &Deployment, args: &[&str]) -> Result<(String, f64), Failure> {
    let started = Instant::now();
    let output = deployment.run(args)?;
    Ok((
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        started.elapsed().as_secs_f64(),
    ))
}

async fn bulk_rows_per_second(url: &str, rows: i64) -> Result<f64, Failure> {
    let mut conn = Conn::connect(&Target::Postgres(url.to_owned())).await?;
    conn.batch("CREATE TABLE bulk_probe (LIKE grants INCLUDING ALL)")
        .await?;
    let started = Instant::now();
    conn.execute(&[
        Statement::new(
            "INSERT INTO bulk_probe SELECT 'gid-' || i, 'client_credentials', 'client-' || (i % 50), NULL, 'api', '[]',
                    'active', '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z', '2026-12-01T00:05:00Z', lpad(i::text, 41, '0'), NULL
             FROM generate_series(1, $1) AS i",
        )
        .int(rows),
    ])
    .await?;
    let secs = started.elapsed().as_secs_f64();
    conn.batch("DROP TABLE bulk_probe").await?;
    Ok(rows as f64 / secs)
}

async fn who_can_latency(deployment: &Deployment) -> Result<(), Failure> {
    let query = deployment.start(&[
        "query-api",
        "--listen",
        "127.0.0.1:0",
        "--issuer",
        "http://bench.writ.test",
        "--audit-token",
        AUDIT_TOKEN,
    ])?;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/audit/who-can?scope=reports:read&at={}",
        query.base,
        // No `+` offset, which a query string would read as a space.
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    let mut latencies = Vec::new();
    let mut holders = 0;
    for _ in 0..20 {
        let started = Instant::now();
        let reply = http.get(&url).bearer_auth(AUDIT_TOKEN).send().await?;
        let status = reply.status();
        let body: serde_json::Value = reply.json().await?;
        latencies.push(started.elapsed());
        if !status.is_success() {
            return Err(format!("who-can answered {status}: {body}").into());
        }
        holders = body.as_array().map_or(0, Vec::len);
    }
    latencies.sort();
    println!(
        "who-can reports:read (the rare scope): {holders} active grants; p50 {:?}, max {:?} over 20 requests",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    query.stop();
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let events: u64 = writ_process::count_argument(1_000_000)?;
    let binary = writ_process::release_binary()?;
    println!("PostgreSQL with its defaults (synchronous_commit=on, fsync=on); release binaries");
    let (url, _dir, deployment) = writ_process::fresh_postgres_deployment(&binary).await?;
    deployment.run(&["migrate"])?;
    populate(&url, events).await?;
    let db = Db::Postgres(Db::connect_postgres(&url, 2).await?);
    let last = db
        .scalar_i64(&Statement::new("SELECT max(position) FROM events"))
        .await?;
    let logged = db
        .scalar_i64(&Statement::new("SELECT count(*) FROM events"))
        .await?;
    let projector = deployment.start(&[
        "projector",
        "--listen",
        "127.0.0.1:0",
        "--issuer",
        "http://bench.writ.test",
    ])?;
    while !writ_process::projected_past(&db, last).await {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    projector.stop();

    settle(&url).await?;
    let tls = db
        .scalar_i64(&Statement::new(
            "SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
        ))
        .await?;
    println!(
        "connections: TLS {} (sslmode as the URL gives it; sqlx prefers TLS when the server offers it)",
        if tls > 0 { "on" } else { "off" }
    );
    let bulk = bulk_rows_per_second(&url, logged).await?;
    settle(&url).await?;
    println!("bulk insert: {bulk:.0} rows/s ({logged} rows shaped like grants, one INSERT … SELECT generate_series, indexes in place)");

    let (_, secs) = timed(&deployment, &["replay", "--into", "bench"])?;
    let mut rows = 0;
    for table in REBUILDABLE_TABLES {
        rows += db
            .scalar_i64(&Statement::new(format!(
                "SELECT count(*) FROM snapshot_bench.{table}"
            )))
            .await?;
    }
    let rate = logged as f64 / secs;
    println!(
        "replay: {logged} events in {secs:.1} s = {rate:.0} events/s; {rows} rows written ({:.2} per event) = {:.0} rows/s; COPY: used (rows folded in memory, keys and indexes built after the load); ratio of rows/s to bulk insert {:.2}",
        rows as f64 / logged as f64,
        rows as f64 / secs,
        (rows as f64 / secs) / bulk
    );
    let (_, secs) = timed(&deployment, &["replay", "--verify"])?;
    println!(
        "replay --verify: {secs:.1} s ({:.0} events/s, the comparison included)",
        logged as f64 / secs
    );

    let (_, seal) = timed(&deployment, &["audit", "seal"])?;
    let (report, verify) = timed(&deployment, &["audit", "verify"])?;
    println!(
        "audit seal: {seal:.1} s; audit verify: {verify:.1} s ({:.0} events/s): {}",
        logged as f64 / verify,
        report.lines().next().unwrap_or_default()
    );
    who_can_latency(&deployment).await?;
    Ok(())
}
