//! The soak (issue 28; not part of CI): the split deployment on a private
//! PostgreSQL cluster with a Kafka-protocol broker, its capacity measured
//! with the mixed traffic closed-loop, then that traffic offered open-loop
//! at a fraction of it while faults are injected on a schedule; then every
//! check of `writ_tests::soak::checks`. Prints a report and writes it with
//! a chart to `--out` (default `target/soak`). Exits non-zero if a check
//! fails.
//!
//!   cargo build --release -p writ-cli -p writ-tests --bins
//!   WRIT_TEST_TANSU=~/.cargo/tansu-0.6.0-libsql/bin/tansu \
//!     target/release/soak [MINUTES] [--load 0.7] [--out DIR] [--keep]
//!
//! Runs as root (it creates and restarts its own cluster with
//! `pg_createcluster`), on 127.0.0.1 only, and stops by itself.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use writ_tests::soak::checks::{self, Check};
use writ_tests::soak::drive::{closed_loop, open_loop};
use writ_tests::soak::faults::{self, metric};
use writ_tests::soak::flows::Traffic;
use writ_tests::soak::http::Http;
use writ_tests::soak::lock;
use writ_tests::soak::receivers::{self, Poller};
use writ_tests::soak::record::{Recorder, Sample};
use writ_tests::soak::report;
use writ_tests::soak::setup::{Failure, Soak};
use writ_tests::{procfs, writ_process};

struct Options {
    duration: Duration,
    load: f64,
    out: PathBuf,
    capacity_run: Duration,
    rss_bound: u64,
    /// Leave the cluster and the data directory for a look afterwards.
    keep: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        duration: Duration::from_secs(30 * 60),
        load: 0.7,
        out: PathBuf::from("target/soak"),
        capacity_run: Duration::from_secs(30),
        rss_bound: 200_000_000,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--load" => options.load = value()?.parse().map_err(|e| format!("--load: {e}"))?,
            "--out" => options.out = PathBuf::from(value()?),
            "--keep" => options.keep = true,
            "--rss-bound-mb" => {
                options.rss_bound = value()?
                    .parse::<u64>()
                    .map_err(|e| format!("--rss-bound-mb: {e}"))?
                    * 1_000_000
            }
            minutes => {
                let minutes: f64 = minutes
                    .parse()
                    .map_err(|_| format!("{minutes:?} is not a number of minutes"))?;
                options.duration = Duration::from_secs_f64(minutes * 60.0);
            }
        }
    }
    if !(0.0..=1.0).contains(&options.load) || options.duration < Duration::from_secs(60) {
        return Err("--load is a fraction of capacity and a run is at least one minute".into());
    }
    Ok(options)
}

/// Every second until `stop`: each process's memory and the active
/// projector's lag.
async fn watch(soak: Arc<Mutex<Soak>>, recorder: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        // A fault holds the deployment while it restarts a process.
        let Some((pids, projectors)) = soak
            .try_lock()
            .ok()
            .map(|soak| (soak.pids(), soak.projector_bases()))
        else {
            continue;
        };
        let rss = pids
            .into_iter()
            .filter_map(|(role, pid)| Some((role, procfs::memory(pid).ok()?.resident)))
            .collect();
        let mut projector_lag = None;
        for base in &projectors {
            if metric(&client, base, "writ_projector_active").await == Some(1.0) {
                projector_lag = metric(&client, base, "writ_projector_lag_events").await;
            }
        }
        recorder.sample(Sample {
            at: recorder.elapsed(),
            rss,
            projector_lag,
        });
    }
}

/// Until every projection and the publisher have passed the log's head,
/// and the head has stopped moving (policies write after the traffic).
async fn settle(pool: &sqlx::PgPool) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut last_head = (-1, -1);
    loop {
        // The log's order is (writing transaction, position): its last
        // event need not have the highest position.
        let head: (i64, i64) = sqlx::query_as(
            "SELECT txid::text::bigint, position FROM events ORDER BY txid DESC, position DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await?
        .unwrap_or((0, 0));
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM projector_checkpoints WHERE (txid, position) < ($1, $2)",
        )
        .bind(head.0)
        .bind(head.1)
        .fetch_one(pool)
        .await?;
        if behind == 0 && head == last_head {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("the projections are still behind {head:?}").into());
        }
        last_head = head;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A CLI command's verdict; its whole output goes to `out/NAME.log`.
fn cli_check(
    name: &str,
    deployment: &writ_process::Deployment,
    args: &[&str],
    out: &std::path::Path,
) -> Check {
    let (passed, said, text) = match deployment.command(args).output() {
        Ok(output) => {
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr);
            let text = format!("{stdout}{stderr}");
            (output.status.success(), stdout, text)
        }
        Err(e) => (false, String::new(), format!("writ: {e}")),
    };
    let _ = std::fs::write(out.join(format!("{}.log", name.replace(' ', "-"))), &text);
    // A pass is the last thing said on stdout (log lines may follow it on
    // stderr); a failure's reason is the last thing said at all.
    let last = |text: &str| {
        text.lines()
            .rfind(|line| !line.trim().is_empty())
            .map(str::to_owned)
    };
    let detail = passed
        .then(|| last(&said))
        .flatten()
        .or_else(|| last(&text))
        .unwrap_or_default();
    Check {
        name: name.to_owned(),
        passed,
        detail,
    }
}

async fn run(options: Options) -> Result<bool, Failure> {
    let binary = writ_process::release_binary()?;
    println!("soak: starting PostgreSQL, the broker and five writ processes");
    let soak = Soak::start(&binary).await?;
    let (database_url, brokers) = (
        soak.deployment.database_url.clone().unwrap_or_default(),
        soak.broker.brokers(),
    );
    let (clients, query_urls) = (soak.clients.clone(), soak.query_urls());
    let recorder = Arc::new(Recorder::new());
    let mut traffic = Traffic::new(
        Http::new(recorder.clone()),
        soak.command_url(),
        query_urls.clone(),
        clients.clone(),
    );
    traffic.prepare(64).await?;
    let poller = Poller::create(soak.command_url(), clients.receiver.clone()).await?;
    let traffic = Arc::new(traffic);

    closed_loop(&traffic, 8, Duration::from_secs(10)).await;
    recorder.restart();
    let (capacity, failed) = closed_loop(&traffic, 32, options.capacity_run).await;
    if failed > 0 {
        let (failures, _) = recorder.failures();
        let first = failures
            .first()
            .map(|f| format!("{}: {}", f.flow, f.message));
        return Err(
            format!("{failed} flows failed while measuring capacity; first {first:?}").into(),
        );
    }
    let rate = capacity * options.load;
    println!(
        "soak: capacity {capacity:.0} flows/s (32 at a time, {:?}); offering {rate:.0}/s for {:?}",
        options.capacity_run, options.duration
    );

    recorder.restart();
    let soak = Arc::new(Mutex::new(soak));
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicU64::new(0));
    // The poller drains only once the policies' last revocations are in.
    let drained = Arc::new(AtomicBool::new(false));
    let poller =
        tokio::spawn(poller.run(Duration::from_millis(500), drained.clone(), polls.clone()));
    let watcher = tokio::spawn(watch(soak.clone(), recorder.clone(), stop.clone()));
    let faults = tokio::spawn(faults::inject(
        soak.clone(),
        recorder.clone(),
        options.duration,
    ));
    open_loop(&traffic, rate, options.duration, 512).await;
    let windows = faults.await??;
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.await;
    let (seconds, (failures, failed_total), samples) =
        (recorder.seconds(), recorder.failures(), recorder.samples());
    println!("soak: traffic stopped; draining the receivers");

    let pool = sqlx::PgPool::connect(&database_url).await?;
    settle(&pool).await?;
    drained.store(true, Ordering::Relaxed);
    let revocations = checks::positions(&pool, writ_infra::revocations::REVOCATION_EVENTS).await?;
    let signals = checks::positions(&pool, &["GrantRevoked", "SsfVerificationRequested"]).await?;
    let topic = receivers::topic(&brokers, &revocations, Duration::from_secs(60)).await?;
    let feed = receivers::feed(&query_urls[1], &clients.resource).await?;
    let poller = poller.await?;

    let mut verdict = checks::acknowledged_writes(&pool, &recorder.take_acknowledged()).await?;
    verdict.extend(checks::receivers(
        &revocations,
        &signals,
        &topic,
        &feed,
        &poller.batches,
    ));
    let warm_up = (options.duration / 10).min(Duration::from_secs(120));
    verdict.push(checks::memory(&samples, warm_up, options.rss_bound));
    verdict.push(checks::errors(&failures, failed_total, &seconds, &windows));
    verdict.push(checks::wrong_answers(&failures));
    pool.close().await;
    // Which routes were slow, by the command API's own histograms.
    std::fs::create_dir_all(&options.out)?;
    let command_url = lock(&soak).command_url();
    if let Ok(reply) = reqwest::get(format!("{command_url}/metrics")).await {
        std::fs::write(options.out.join("command-api.metrics"), reply.text().await?)?;
    }
    let deployment = {
        let mut soak = lock(&soak);
        soak.stop_processes();
        soak.deployment.clone()
    };
    let verify = ["replay", "--verify"];
    verdict.push(cli_check(
        "writ replay --verify",
        &deployment,
        &verify,
        &options.out,
    ));
    let audit = ["audit", "verify"];
    verdict.push(cli_check(
        "writ audit verify",
        &deployment,
        &audit,
        &options.out,
    ));

    let report = report::Report {
        duration: options.duration,
        capacity,
        rate,
        seconds: &seconds,
        samples: &samples,
        windows: &windows,
        failures: &failures,
        verdict: &verdict,
        ssf_polls: polls.load(Ordering::Relaxed),
        ssf_failed_polls: poller.failed_polls,
    };
    let text = report.markdown();
    println!("{text}");
    std::fs::write(options.out.join("soak-report.md"), &text)?;
    writ_tests::soak::chart::draw(&options.out.join("soak.svg"), &seconds, &samples, &windows)?;
    println!("soak: report and chart in {}", options.out.display());
    if options.keep {
        lock(&soak).broker.stop();
        println!(
            "soak: kept writ --data-dir {} --database-url {}",
            deployment.data_dir.display(),
            database_url
        );
        // Nothing of the deployment is dropped, so nothing is removed.
        std::mem::forget(soak);
    }
    Ok(verdict.iter().all(|check| check.passed))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("soak: {message}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("soak: a check failed (see the report)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("soak: {error}");
            ExitCode::FAILURE
        }
    }
}
