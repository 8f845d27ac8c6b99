//! Token-service throughput against node-oidc-provider 9, in one run.
//!
//!   cargo build --release -p writ-cli -p writ-tests --bins
//!   target/release/bench-tokens [SECONDS] [--postgres URL]
//!
//! Writ runs as the release binary with its defaults (SQLite WAL with
//! synchronous=FULL, or PostgreSQL with `--postgres URL`) and its JWT
//! access tokens; node-oidc-provider with its own defaults (in-memory
//! adapter, opaque access tokens, no `NODE_ENV`). Each has one
//! client_secret_basic client. No benchmark-only flags.
//!
//! 1. Warm-up: `WARM_UP_TOKENS` issuances on each server from this process.
//! 2. Maximum throughput: `wrk -t1 -c32 -dSECONDS` in its own process,
//!    `ROUNDS` rounds alternating Writ and the peer, for client-credentials
//!    issuance and then for introspection. Each side's median req/s, p50
//!    and p99, the ratio of the median throughputs, and wrk's CPU share of
//!    the machine (the generator shares the cores with the servers). Any
//!    answer other than 200, or any socket error, fails the benchmark.
//! 3. The introspected tokens are `INTROSPECTED_TOKENS` issued from this
//!    process right before the introspection rounds and checked active on
//!    their server: node-oidc-provider's in-memory adapter keeps only its
//!    newest 1000 entries, so tokens from the issuance rounds would be
//!    forgotten there and introspect inactive, which is cheaper work.
//! 4. A constant-rate run at 70 % of Writ's median maximum, with this
//!    crate's generator (`load::constant_rate`: built like wrk2, one
//!    thread, raw HTTP/1.1 over keep-alive connections, all opened before
//!    the first request), which measures latency from each request's due
//!    time, for p99 against the targets.
//!    It runs in this process, so its CPU share is this process's; it
//!    also prints how late its own timer sent the requests.
//! 5. Writ's resident memory at idle, its peak after each phase, and what
//!    is resident after the benchmark.
//! 6. A restart of Writ, then the log against what was delivered. This
//!    process awaits every request it sends, but wrk stops at its deadline
//!    without reading the answers still in flight, at most one per
//!    connection, and Writ may have committed those. So the check is
//!    0 ≤ issuance events − 200s ≤ 32 per wrk issuance run: no 200 without
//!    its event, and no event beyond the requests wrk cut off. Every token
//!    issued from this process must still introspect active.

use std::time::Duration;

use writ_tests::load::{self, Stats, Target as LoadTarget};
use writ_tests::node_oidc::{self, NodeOidc};
use writ_tests::procfs::{self, Memory};
use writ_tests::token_endpoints::{
    basic, introspection_bodies, TokenEndpoints, CLIENT_CREDENTIALS_BODY,
};
use writ_tests::writ_process::{self, free_port, Server};
use writ_tests::wrk;

const CONNECTIONS: usize = 32;
/// Odd, so each median is one run's own figure.
const ROUNDS: usize = 3;
const WARM_UP_TOKENS: usize = 1000;
/// Well under the 1000 entries node-oidc-provider's memory adapter keeps.
const INTROSPECTED_TOKENS: usize = 256;
const STEADY_SHARE_OF_MAXIMUM: f64 = 0.7;
const STEADY_CONNECTIONS: usize = 256;
const ISSUANCE_P99_TARGET: Duration = Duration::from_millis(10);
const INTROSPECTION_P99_TARGET: Duration = Duration::from_millis(3);
/// Decimal megabytes, the stricter reading of the targets.
const IDLE_RSS_LIMIT: u64 = 40_000_000;
const AFTER_RSS_LIMIT: u64 = 150_000_000;
const PEER: &str = "node-oidc-provider";

type Failure = Box<dyn std::error::Error>;

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// 12345 as "12,345", as the tables in docs/benchmarks.md write it.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// One wrk run's figures, or the medians of several.
#[derive(Debug, Clone, Copy)]
struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    cpu_share: f64,
}

impl Figures {
    fn of(run: &wrk::Run) -> Self {
        Self {
            per_second: run.per_second(),
            p50: run.p50,
            p99: run.p99,
            cpu_share: run.cpu_share,
        }
    }

    fn medians(runs: &[wrk::Run]) -> Self {
        fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
            values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            values[values.len() / 2]
        }
        Self {
            per_second: median(runs.iter().map(wrk::Run::per_second).collect()),
            p50: median(runs.iter().map(|run| run.p50).collect()),
            p99: median(runs.iter().map(|run| run.p99).collect()),
            cpu_share: median(runs.iter().map(|run| run.cpu_share).collect()),
        }
    }

    fn print(&self, label: &str, note: &str) {
        println!(
            "  {label:<28} {:>8.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   wrk CPU {:>3.0} %{note}",
            self.per_second,
            ms(self.p50),
            ms(self.p99),
            self.cpu_share * 1e2,
        );
    }

    fn cell(&self) -> String {
        format!(
            "{} req/s, p50 {:.1} ms, p99 {:.1} ms",
            grouped(self.per_second.round() as u64),
            ms(self.p50),
            ms(self.p99)
        )
    }
}

struct Comparison {
    writ: Figures,
    peer: Figures,
    /// The 200s wrk read from Writ over all rounds.
    writ_ok: u64,
}

impl Comparison {
    fn ratio(&self) -> f64 {
        self.writ.per_second / self.peer.per_second.max(1e-9)
    }
}

/// `ROUNDS` wrk runs on each side, alternating, Writ first.
fn compare(
    what: &str,
    writ: &wrk::Load,
    peer: &wrk::Load,
    duration: Duration,
) -> Result<Comparison, Failure> {
    println!(
        "\n{what}: wrk -t1 -c{CONNECTIONS} -d{}s, {ROUNDS} rounds alternating; wrk's CPU as a share of all {} cores",
        duration.as_secs(),
        cores()
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        for (name, load, runs) in [("Writ", writ, &mut ours), (PEER, peer, &mut theirs)] {
            let run = wrk::run(load, CONNECTIONS, duration)
                .map_err(|e| format!("{what}, {name} #{round} failed: {e}"))?;
            Figures::of(&run).print(
                &format!("{name} #{round}"),
                &format!("   {} × 200", grouped(run.ok)),
            );
            runs.push(run);
        }
    }
    let comparison = Comparison {
        writ: Figures::medians(&ours),
        peer: Figures::medians(&theirs),
        writ_ok: ours.iter().map(|run| run.ok).sum(),
    };
    comparison.writ.print("median Writ", "");
    comparison.peer.print(&format!("median {PEER}"), "");
    println!(
        "  ratio Writ / {PEER}: {:.2}x throughput (medians)",
        comparison.ratio()
    );
    Ok(comparison)
}

/// A constant-rate run; every request must succeed.
struct Steady {
    rate: f64,
    stats: Stats,
    target: Duration,
    /// This process's CPU over the run's wall time on all cores: here the
    /// generator is in-process.
    generator_cpu_share: f64,
}

impl Steady {
    async fn run(
        name: &str,
        load: &LoadTarget,
        rate: f64,
        duration: Duration,
        target: Duration,
    ) -> Result<Self, Failure> {
        let cpu_before = procfs::own_cpu()?;
        let stats = load::constant_rate(load, rate, STEADY_CONNECTIONS, duration).await;
        let cpu = procfs::own_cpu()?.saturating_sub(cpu_before);
        if stats.failed > 0 {
            return Err(format!(
                "constant-rate {name}: {} of {} requests failed, first: {}",
                stats.failed,
                stats.failed + stats.ok,
                stats.failures.join("; ")
            )
            .into());
        }
        let generator_cpu_share =
            cpu.as_secs_f64() / (stats.elapsed.as_secs_f64() * cores() as f64).max(1e-9);
        let steady = Self {
            rate,
            stats,
            target,
            generator_cpu_share,
        };
        println!("  {name:<14} {}", steady.cell());
        Ok(steady)
    }

    fn cell(&self) -> String {
        let p99 = self.stats.percentile(0.99);
        format!(
            "{}/s: p50 {:.2} ms, p99 {:.2} ms (target ≤ {} ms: {}); generator CPU {:.0} %, \
             its timer late by p50 {:.2} ms, p99 {:.2} ms",
            grouped(self.rate.round() as u64),
            ms(self.stats.percentile(0.50)),
            ms(p99),
            self.target.as_millis(),
            met(p99 <= self.target),
            self.generator_cpu_share * 1e2,
            ms(self.stats.timer_lateness_percentile(0.50)),
            ms(self.stats.timer_lateness_percentile(0.99))
        )
    }
}

fn writ_memory(server: &Server) -> Result<Memory, String> {
    procfs::memory(server.pid())
}

/// Everything the run measured, for the table at the end.
struct Summary {
    backend: &'static str,
    peer_version: String,
    seconds: u64,
    issuance: Comparison,
    introspection: Comparison,
    steady_issuance: Steady,
    steady_introspection: Steady,
    idle: Memory,
    after: Memory,
    events: i64,
    /// 200s from the token endpoint: to this process's requests, read by
    /// wrk, and at the constant rate.
    delivered: [u64; 3],
    tokens_checked: usize,
    tokens_inactive: usize,
}

impl Summary {
    fn surplus(&self) -> i64 {
        self.events - self.delivered.iter().sum::<u64>() as i64
    }

    /// The issuance events wrk may have caused without reading the 200.
    fn cut_off_allowance() -> i64 {
        (CONNECTIONS * ROUNDS) as i64
    }

    fn log_matches(&self) -> bool {
        (0..=Self::cut_off_allowance()).contains(&self.surplus()) && self.tokens_inactive == 0
    }

    fn print_markdown(&self) {
        let (issuance, introspection) = (&self.issuance, &self.introspection);
        println!(
            "\n| {} cores, {} s per run | Writ, {} | {PEER} {} (in memory) | Writ / node |",
            cores(),
            self.seconds,
            self.backend,
            self.peer_version
        );
        println!("| --- | --- | --- | --- |");
        for (what, comparison) in [
            ("client_credentials", issuance),
            ("introspection", introspection),
        ] {
            println!(
                "| {what}, median of {ROUNDS} (wrk -t1 -c{CONNECTIONS}) | {} | {} | {:.2}x |",
                comparison.writ.cell(),
                comparison.peer.cell(),
                comparison.ratio()
            );
        }
        println!(
            "| wrk's CPU share of the machine, issuance / introspection | {:.0} % / {:.0} % | {:.0} % / {:.0} % | |",
            issuance.writ.cpu_share * 1e2,
            introspection.writ.cpu_share * 1e2,
            issuance.peer.cpu_share * 1e2,
            introspection.peer.cpu_share * 1e2,
        );
        println!(
            "| 70 % constant rate, issuance | {} | | |",
            self.steady_issuance.cell()
        );
        println!(
            "| 70 % constant rate, introspection | {} | | |",
            self.steady_introspection.cell()
        );
        println!(
            "| Writ RSS: idle, peak, after the benchmark | {:.1} MB (≤ {:.0} MB: {}), {:.1} MB, {:.1} MB (< {:.0} MB: {}) | | |",
            mb(self.idle.resident),
            mb(IDLE_RSS_LIMIT),
            met(self.idle.resident <= IDLE_RSS_LIMIT),
            mb(self.after.peak),
            mb(self.after.resident),
            mb(AFTER_RSS_LIMIT),
            met(self.after.resident < AFTER_RSS_LIMIT),
        );
        println!("| after a restart | {} | | |", self.log_cell());
    }

    fn log_cell(&self) -> String {
        let [here, by_wrk, steady] = self.delivered;
        format!(
            "{} issuance events for {} 200s ({} to this process, {} read by wrk, {} at the constant rate): {:+}, at most {} cut off by wrk; {} of {} tokens issued to this process active",
            grouped(self.events.max(0) as u64),
            grouped(here + by_wrk + steady),
            grouped(here),
            grouped(by_wrk),
            grouped(steady),
            self.surplus(),
            Self::cut_off_allowance(),
            grouped((self.tokens_checked - self.tokens_inactive) as u64),
            grouped(self.tokens_checked as u64)
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let (seconds, database_url) = writ_process::run_arguments()?;
    let work = tempfile::tempdir()?;
    let (deployment, writ_auth) =
        writ_process::bench_deployment(work.path(), database_url, &["--access-token-ttl", "1h"])?;
    let server = deployment.serve()?;
    let idle = writ_memory(&server)?;
    let writ = TokenEndpoints::writ(&server.base, &writ_auth);
    let peer_dir = std::env::temp_dir().join("writ-bench-node-oidc-provider");
    std::fs::create_dir_all(&peer_dir)?;
    let node = NodeOidc::start(&peer_dir, free_port()?)?;
    let peer = TokenEndpoints {
        token_url: format!("{}/token", node.base),
        introspection_url: format!("{}/token/introspection", node.base),
        authorization: basic(node_oidc::CLIENT_ID, node_oidc::CLIENT_SECRET),
    };
    let backend = match &deployment.database_url {
        Some(_) => "PostgreSQL (synchronous_commit=on, fsync=on)",
        None => "embedded SQLite (WAL, synchronous=FULL)",
    };
    println!(
        "Writ (release, {backend}, JWT access tokens) vs {PEER} {} (in memory, opaque access tokens)",
        node.version
    );
    println!(
        "Writ idle RSS {:.1} MB (≤ {:.0} MB: {})",
        mb(idle.resident),
        mb(IDLE_RSS_LIMIT),
        met(idle.resident <= IDLE_RSS_LIMIT)
    );

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let warm_up_tokens = writ.issue(&http, WARM_UP_TOKENS, CONNECTIONS).await?;
    peer.issue(&http, WARM_UP_TOKENS, CONNECTIONS).await?;
    let issuance_bodies = [CLIENT_CREDENTIALS_BODY.to_owned()];
    let issuance = compare(
        "client_credentials issuance",
        &writ.wrk_load(&writ.token_url, &issuance_bodies),
        &peer.wrk_load(&peer.token_url, &issuance_bodies),
        seconds,
    )?;
    println!(
        "  Writ peak RSS so far {:.1} MB",
        mb(writ_memory(&server)?.peak)
    );

    let writ_tokens = writ.issue(&http, INTROSPECTED_TOKENS, CONNECTIONS).await?;
    let peer_tokens = peer.issue(&http, INTROSPECTED_TOKENS, CONNECTIONS).await?;
    for (name, endpoints, tokens) in [("Writ", &writ, &writ_tokens), (PEER, &peer, &peer_tokens)] {
        let inactive = endpoints.inactive(&http, tokens, CONNECTIONS).await?;
        if inactive > 0 {
            return Err(format!(
                "{name}: {inactive} of {} fresh tokens inactive",
                tokens.len()
            )
            .into());
        }
    }
    let (writ_bodies, peer_bodies) = (
        introspection_bodies(&writ_tokens),
        introspection_bodies(&peer_tokens),
    );
    let introspection = compare(
        &format!("introspection of {INTROSPECTED_TOKENS} tokens each"),
        &writ.wrk_load(&writ.introspection_url, &writ_bodies),
        &peer.wrk_load(&peer.introspection_url, &peer_bodies),
        seconds,
    )?;
    println!(
        "  Writ peak RSS so far {:.1} MB",
        mb(writ_memory(&server)?.peak)
    );

    println!(
        "\nconstant rate at {:.0} % of Writ's median maximum, {} s each",
        STEADY_SHARE_OF_MAXIMUM * 1e2,
        seconds.as_secs()
    );
    let steady_issuance = Steady::run(
        "issuance",
        &writ.load_target(&writ.token_url, issuance_bodies.to_vec()),
        STEADY_SHARE_OF_MAXIMUM * issuance.writ.per_second,
        seconds,
        ISSUANCE_P99_TARGET,
    )
    .await?;
    let steady_introspection = Steady::run(
        "introspection",
        &writ.load_target(&writ.introspection_url, writ_bodies),
        STEADY_SHARE_OF_MAXIMUM * introspection.writ.per_second,
        seconds,
        INTROSPECTION_P99_TARGET,
    )
    .await?;
    let after = writ_memory(&server)?;
    println!(
        "  Writ peak RSS {:.1} MB; RSS after the benchmark {:.1} MB (< {:.0} MB: {})",
        mb(after.peak),
        mb(after.resident),
        mb(AFTER_RSS_LIMIT),
        met(after.resident < AFTER_RSS_LIMIT)
    );

    server.stop();
    let restarted = deployment.serve()?;
    let events = writ_process::count_issuance_events(&deployment).await?;
    let issued_here = [warm_up_tokens, writ_tokens].concat();
    let tokens_inactive = TokenEndpoints::writ(&restarted.base, &writ_auth)
        .inactive(&http, &issued_here, CONNECTIONS)
        .await?;
    restarted.stop();
    let delivered = [
        issued_here.len() as u64,
        issuance.writ_ok,
        steady_issuance.stats.ok,
    ];
    let summary = Summary {
        backend,
        peer_version: node.version.clone(),
        seconds: seconds.as_secs(),
        issuance,
        introspection,
        steady_issuance,
        steady_introspection,
        idle,
        after,
        events,
        delivered,
        tokens_checked: issued_here.len(),
        tokens_inactive,
    };
    println!("\nafter a restart: {}", summary.log_cell());
    summary.print_markdown();
    if !summary.log_matches() {
        return Err("the log does not match what was delivered".into());
    }
    Ok(())
}
