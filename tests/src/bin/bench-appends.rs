//! Append throughput: 32 concurrent commands, with group commit and with
//! one command per transaction, side by side, at Writ's default durability,
//! on SQLite and — when `WRIT_TEST_POSTGRES` names a server, as in
//! `bash scripts/test` — on PostgreSQL. Prints numbers; it is not a test.
//!
//! WRIT_TEST_POSTGRES=postgres://writ:writ@127.0.0.1:5432/postgres \
//!   cargo run --release -p writ-tests --bin bench-appends [-- SECONDS]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use writ_domain::grant::{Grant, GrantCommand, TokenRequest};
use writ_domain::values::{ScopeSet, SecretHash};
use writ_store::executor::Stream;
use writ_store::DEFAULT_MAX_BATCH;
use writ_store::{Executor, Metadata, Store};

const CONCURRENCY: usize = 32;

struct Run {
    commands: u64,
    batches: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

/// One client-credentials issuance per command: a new `Grant` stream with
/// two events, the write Writ does most.
#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

async fn open(
    backend: Backend,
    dir: &std::path::Path,
    max_batch: usize,
) -> Result<Store, Box<dyn std::error::Error>> {
    Ok(match backend {
        Backend::Sqlite => Store::open_sqlite_with(dir, max_batch).await?,
        Backend::Postgres => {
            let url = writ_testing::fresh_postgres_database().await?;
            Store::open_postgres(&url, max_batch).await?
        }
    })
}

async fn run(
    backend: Backend,
    max_batch: usize,
    seconds: u64,
) -> Result<Run, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = open(backend, dir.path(), max_batch).await?;
    let executor = Arc::new(Executor::new(store.clone(), writ_store::services::system()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..CONCURRENCY {
        let (executor, stop) = (executor.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let gid = format!("w{worker}-{n}");
                let command = GrantCommand::GrantClientCredentials {
                    gid: gid.clone(),
                    client_id: "bench".into(),
                    scopes: ScopeSet::parse("api").unwrap_or_default(),
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
                let begun = Instant::now();
                let outcome = executor
                    .execute_with::<Grant>(
                        &gid,
                        command,
                        &Metadata::cli("bench"),
                        vec![],
                        Stream::New,
                    )
                    .await;
                if outcome.is_err() {
                    return Err("a command failed");
                }
                latencies.push(begun.elapsed());
            }
            Ok(latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let metrics = store.metrics();
    Ok(Run {
        commands: metrics.commands_committed.get(),
        batches: metrics.batches_committed.get(),
        elapsed,
        latencies,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut backends = vec![("SQLite", Backend::Sqlite)];
    if std::env::var(writ_testing::ADMIN_URL_VARIABLE).is_ok() {
        backends.push(("PostgreSQL", Backend::Postgres));
    } else {
        println!(
            "({} is not set: PostgreSQL skipped)",
            writ_testing::ADMIN_URL_VARIABLE
        );
    }
    println!("appends from {CONCURRENCY} concurrent commands (one client-credentials grant each), {seconds} s per mode");
    for (name, backend) in backends {
        let dir = tempfile::tempdir()?;
        let settings = open(backend, dir.path(), DEFAULT_MAX_BATCH)
            .await?
            .durability()
            .await?;
        let settings: Vec<String> = settings
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        println!("\n{name}: {} (Writ's defaults)", settings.join(" "));
        println!(
            "{:<28} {:>10} {:>10} {:>12} {:>10} {:>10}",
            "mode", "commands/s", "events/s", "cmds/batch", "p50 ms", "p99 ms"
        );
        let mut rates = Vec::new();
        for (label, max_batch) in [
            ("group commit", DEFAULT_MAX_BATCH),
            ("one command per transaction", 1),
        ] {
            let run = run(backend, max_batch, seconds).await?;
            println!(
                "{:<28} {:>10.0} {:>10.0} {:>12.1} {:>10.2} {:>10.2}",
                label,
                run.per_second(),
                run.per_second() * 2.0,
                run.commands as f64 / run.batches.max(1) as f64,
                run.percentile(0.50).as_secs_f64() * 1e3,
                run.percentile(0.99).as_secs_f64() * 1e3,
            );
            rates.push(run.per_second());
        }
        if let [group, single] = rates[..] {
            println!(
                "group commit / one per transaction: {:.1}x",
                group / single.max(f64::MIN_POSITIVE)
            );
        }
    }
    Ok(())
}
