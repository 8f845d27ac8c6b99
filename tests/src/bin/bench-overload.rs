//! Overload: Writ offered three times what it can serve by an open-loop
//! generator, and what it does with the excess.
//!
//!   cargo build --release -p writ-cli -p writ-tests --bins
//!   target/release/bench-overload [SECONDS] [--postgres URL]
//!
//! Writ runs as the release binary with its defaults (`max_in_flight` 128,
//! `queue_wait` 50 ms; SQLite WAL with synchronous=FULL, or PostgreSQL).
//!
//! 1. Capacity: client_credentials issuance under `wrk -t1 -c32 -d10s`,
//!    the token benchmark's measure, median of three runs.
//! 2. Overload: `oha` at three times that rate for SECONDS (default 10)
//!    over `CONNECTIONS` connections, open loop, latency from each
//!    request's scheduled time. Meanwhile this process samples Writ's RSS
//!    every 100 ms and sends a probe every 100 ms: a 503 must carry
//!    `Retry-After: 1` and `temporarily_unavailable`, and `/healthz` must
//!    answer 200 throughout.
//! 3. Recovery: the capacity measure once more, right after.
//! 4. The log against the answers: Writ restarted, its `AccessTokenIssued`
//!    events may exceed the 200s the generators counted (the probes' own
//!    tokens, requests cut off at a deadline) and never fall short.
//!
//! Fails when an answer is anything but 200 or 503, when a 503 lacks
//! `Retry-After`, or when a probe of `/healthz` fails.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use writ_tests::oha::{self, OpenLoop};
use writ_tests::procfs;
use writ_tests::token_endpoints::{TokenEndpoints, CLIENT_CREDENTIALS_BODY};
use writ_tests::writ_process::{self, Deployment, Server};
use writ_tests::wrk;

const CAPACITY_CONNECTIONS: usize = 32;
const CAPACITY_SECONDS: u64 = 10;
const CAPACITY_ROUNDS: usize = 3;
const OVERLOAD: f64 = 3.0;
/// Enough that the generator's own pool never caps the offered rate:
/// at 25,000 requests/s and 50 ms each, 1,250 are open at once.
const CONNECTIONS: usize = 2_000;

type Failure = Box<dyn std::error::Error>;

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn capacity(load: &wrk::Load) -> Result<(f64, u64), Failure> {
    let mut rates = Vec::new();
    let mut ok = 0;
    for _ in 0..CAPACITY_ROUNDS {
        let run = wrk::run(
            load,
            CAPACITY_CONNECTIONS,
            Duration::from_secs(CAPACITY_SECONDS),
        )?;
        println!(
            "  wrk -c{CAPACITY_CONNECTIONS}: {:.0} req/s, p99 {:.2} ms",
            run.per_second(),
            ms(run.p99)
        );
        rates.push(run.per_second());
        ok += run.ok;
    }
    rates.sort_by(f64::total_cmp);
    Ok((rates[rates.len() / 2], ok))
}

/// What the probes saw while the generator ran.
#[derive(Default)]
struct Probes {
    sent: AtomicU64,
    shed: AtomicU64,
    shed_without_retry_after: AtomicU64,
    health_failures: AtomicU64,
    peak_rss: AtomicU64,
}

async fn probe(
    server_base: String,
    authorization: String,
    pid: u32,
    probes: Arc<Probes>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(memory) = procfs::memory(pid) {
            probes
                .peak_rss
                .fetch_max(memory.resident, Ordering::Relaxed);
        }
        let token = http
            .post(format!("{server_base}/token"))
            .header("authorization", &authorization)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(CLIENT_CREDENTIALS_BODY)
            .send()
            .await;
        probes.sent.fetch_add(1, Ordering::Relaxed);
        if let Ok(response) = token {
            if response.status() == 503 {
                probes.shed.fetch_add(1, Ordering::Relaxed);
                let retry_after = response.headers().get("retry-after").cloned();
                let body = response.text().await.unwrap_or_default();
                if retry_after.as_ref().and_then(|v| v.to_str().ok()) != Some("1")
                    || !body.contains("temporarily_unavailable")
                {
                    probes
                        .shed_without_retry_after
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let health = http.get(format!("{server_base}/healthz")).send().await;
        if !health.is_ok_and(|r| r.status() == 200) {
            probes.health_failures.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let (seconds, database_url) = writ_process::run_arguments()?;
    let work = tempfile::tempdir()?;
    let (deployment, authorization) =
        writ_process::bench_deployment(work.path(), database_url, &[])?;
    let server = deployment.serve()?;
    let idle = procfs::memory(server.pid())?;
    let endpoints = TokenEndpoints::writ(&server.base, &authorization);
    let bodies = [CLIENT_CREDENTIALS_BODY.to_owned()];
    let load = endpoints.wrk_load(&endpoints.token_url, &bodies);
    let backend = match &deployment.database_url {
        Some(_) => "PostgreSQL (synchronous_commit=on)",
        None => "embedded SQLite (WAL, synchronous=FULL)",
    };
    println!("Writ (release, {backend}, defaults: max_in_flight 128, queue_wait 50 ms)");
    println!("Writ idle RSS {:.1} MB", mb(idle.resident));

    println!("\ncapacity, client_credentials issuance:");
    let (capacity_before, wrk_ok_before) = capacity(&load)?;
    let rate = capacity_before * OVERLOAD;
    println!(
        "\noverload: oha -q {rate:.0} (3 × {capacity_before:.0}) -c {CONNECTIONS} -z {}s, open loop",
        seconds.as_secs()
    );
    let probes = Arc::new(Probes::default());
    let stop = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn(probe(
        server.base.clone(),
        authorization.clone(),
        server.pid(),
        probes.clone(),
        stop.clone(),
    ));
    let open_loop = OpenLoop {
        url: &endpoints.token_url,
        authorization: &authorization,
        body: CLIENT_CREDENTIALS_BODY,
        rate,
        connections: CONNECTIONS,
        duration: seconds,
    };
    let outcome = tokio::task::block_in_place(|| oha::run(&open_loop))?;
    stop.store(true, Ordering::Relaxed);
    let _ = prober.await;
    let after_overload = procfs::memory(server.pid())?;
    let elapsed = outcome.elapsed.as_secs_f64().max(1e-9);
    let (ok, shed) = (outcome.count(200), outcome.count(503));
    let other: u64 = outcome
        .statuses
        .iter()
        .filter(|(status, _)| !matches!(status, 200 | 503))
        .map(|(_, n)| n)
        .sum();
    println!(
        "  answered {:.0}/s: 200 {:.0}/s ({ok}), 503 {:.0}/s ({shed}, {:.0} % of answers), other {other}",
        outcome.answered() as f64 / elapsed,
        ok as f64 / elapsed,
        shed as f64 / elapsed,
        shed as f64 * 1e2 / outcome.answered().max(1) as f64,
    );
    println!(
        "  admitted (200) p50 {:.1} ms p99 {:.1} ms; shed (503) p50 {:.1} ms p99 {:.1} ms, from each request's scheduled time",
        ms(outcome.admitted_p50),
        ms(outcome.admitted_p99),
        ms(outcome.refused_p50),
        ms(outcome.refused_p99),
    );
    println!("  not answered: {:?}", outcome.errors);
    println!("  oha CPU {:.0} % of the machine", outcome.cpu_share * 1e2);
    println!(
        "  probes: {} sent, {} shed, {} shed without Retry-After: 1, {} /healthz failures",
        probes.sent.load(Ordering::Relaxed),
        probes.shed.load(Ordering::Relaxed),
        probes.shed_without_retry_after.load(Ordering::Relaxed),
        probes.health_failures.load(Ordering::Relaxed),
    );
    println!(
        "  Writ RSS: idle {:.1} MB, peak during overload {:.1} MB, right after {:.1} MB",
        mb(idle.resident),
        mb(probes.peak_rss.load(Ordering::Relaxed)),
        mb(after_overload.resident),
    );

    println!("\nrecovery, the capacity measure again:");
    let (capacity_after, wrk_ok_after) = capacity(&load)?;
    println!(
        "  capacity after / before: {:.2}",
        capacity_after / capacity_before.max(1e-9)
    );
    check_log(
        &deployment,
        server,
        ok + wrk_ok_before + wrk_ok_after,
        &outcome,
    )
    .await?;

    if other > 0 {
        return Err(format!("{other} answers were neither 200 nor 503").into());
    }
    if probes.shed_without_retry_after.load(Ordering::Relaxed) > 0 {
        return Err("a 503 came without Retry-After: 1 or temporarily_unavailable".into());
    }
    if probes.health_failures.load(Ordering::Relaxed) > 0 {
        return Err("/healthz failed during the overload".into());
    }
    Ok(())
}

/// Every 200 has its event; events beyond the 200s only for requests a
/// generator cut off at its deadline (wrk: at most one per connection).
async fn check_log(
    deployment: &Deployment,
    server: Server,
    counted_ok: u64,
    outcome: &oha::Outcome,
) -> Result<(), Failure> {
    server.stop();
    let restarted = deployment.serve()?;
    let events = writ_process::count_issuance_events(deployment).await? as u64;
    restarted.stop();
    let cut_off =
        outcome.errors.values().sum::<u64>() + (2 * CAPACITY_ROUNDS * CAPACITY_CONNECTIONS) as u64;
    // The probes' own 200s are not counted: they are few, and bound below.
    println!(
        "\nlog: {events} issuance events for {counted_ok} 200s counted by the generators (cut off at deadlines: at most {cut_off})"
    );
    if events < counted_ok {
        return Err(format!("{} 200s have no event", counted_ok - events).into());
    }
    Ok(())
}
