//! Token-service throughput against node-oidc-provider 9, in one run:
//! client-credentials issuance and introspection at 32 connections,
//! alternating between the two servers, then a constant-rate run at 70 %
//! of Writ's maximum for p99, then a restart of Writ and a check that the
//! log holds one issuance per 200 and that sampled tokens are active.
//! Writ runs as the release binary with its defaults (SQLite WAL with
//! synchronous=FULL, or PostgreSQL with `--postgres URL`).
//!
//!   cargo build --release -p writ-cli -p writ-tests --bins
//!   target/release/bench-tokens [SECONDS] [--postgres URL]

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use writ_store::statement::Statement;
use writ_store::{Conn, Target};
use writ_tests::load::{self, Stats, Target as LoadTarget};
use writ_tests::node_oidc::{self, NodeOidc};
use writ_tests::writ_process::{self, Deployment};

const CONNECTIONS: usize = 32;
const ROUNDS: usize = 2;

type Failure = Box<dyn std::error::Error>;

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn issuance(base: &str, authorization: &str) -> LoadTarget {
    LoadTarget {
        url: format!("{base}/token"),
        authorization: authorization.to_owned(),
        body: Arc::new(|_| "grant_type=client_credentials&scope=read".to_owned()),
    }
}

fn introspection(url: String, authorization: &str, tokens: Vec<String>) -> LoadTarget {
    let tokens = Arc::new(tokens);
    LoadTarget {
        url,
        authorization: authorization.to_owned(),
        body: Arc::new(move |i| format!("token={}", tokens[i % tokens.len()])),
    }
}

fn tokens_of(stats: &Stats) -> Vec<String> {
    stats
        .samples
        .iter()
        .filter_map(|body| serde_json::from_str::<serde_json::Value>(body).ok())
        .filter_map(|body| body["access_token"].as_str().map(str::to_owned))
        .collect()
}

fn line(name: &str, stats: &Stats) {
    println!(
        "  {name:<22} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} ok, {} failed)",
        stats.per_second(),
        stats.percentile(0.50).as_secs_f64() * 1e3,
        stats.percentile(0.99).as_secs_f64() * 1e3,
        stats.ok,
        stats.failed
    );
}

fn mean(runs: &[Stats], f: impl Fn(&Stats) -> f64) -> f64 {
    runs.iter().map(f).sum::<f64>() / runs.len().max(1) as f64
}

/// Alternates Writ and the peer `ROUNDS` times; returns both sets of runs.
async fn compare(
    what: &str,
    writ: &LoadTarget,
    peer: &LoadTarget,
    seconds: Duration,
) -> (Vec<Stats>, Vec<Stats>) {
    println!(
        "\n{what}, {CONNECTIONS} connections, {} s per run",
        seconds.as_secs()
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let stats = load::closed_loop(writ, CONNECTIONS, seconds).await;
        line(&format!("Writ #{round}"), &stats);
        ours.push(stats);
        let stats = load::closed_loop(peer, CONNECTIONS, seconds).await;
        line(&format!("node-oidc-provider #{round}"), &stats);
        theirs.push(stats);
    }
    let ms = |p: f64| move |s: &Stats| s.percentile(p).as_secs_f64() * 1e3;
    println!(
        "  ratio Writ / node-oidc-provider: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
        mean(&ours, Stats::per_second) / mean(&theirs, Stats::per_second).max(1e-9),
        mean(&ours, ms(0.5)) / mean(&theirs, ms(0.5)).max(1e-9),
        mean(&ours, ms(0.99)) / mean(&theirs, ms(0.99)).max(1e-9),
    );
    (ours, theirs)
}

async fn count_issuance_events(deployment: &Deployment) -> Result<i64, Failure> {
    let target = match &deployment.database_url {
        Some(url) => Target::Postgres(url.clone()),
        None => Target::Sqlite(deployment.data_dir.join("writ.db")),
    };
    let mut conn = Conn::connect(&target).await?;
    let row = conn
        .fetch_optional(&Statement::new(
            "SELECT count(*) AS n FROM events WHERE event_type = 'AccessTokenIssued'",
        ))
        .await?;
    Ok(row
        .and_then(|r| r.get("n").and_then(|v| v.as_i64()))
        .unwrap_or(0))
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let mut seconds = Duration::from_secs(10);
    let mut database_url = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--postgres" => database_url = args.next(),
            other => seconds = Duration::from_secs(other.parse()?),
        }
    }
    let binary = writ_process::release_binary()?;
    let work = tempfile::tempdir()?;
    let deployment = Deployment {
        binary,
        data_dir: work.path().join("writ"),
        database_url,
    };
    std::fs::create_dir_all(&deployment.data_dir)?;
    deployment.run(&["keys", "init"])?;
    let created = deployment.run(&[
        "--json",
        "client",
        "create",
        "--name",
        "bench",
        "--scope",
        "read",
        "--access-token-ttl",
        "1h",
    ])?;
    let client: serde_json::Value = serde_json::from_slice(&created.stdout)?;
    let writ_auth = basic(
        client["client_id"].as_str().unwrap_or_default(),
        client["client_secret"].as_str().unwrap_or_default(),
    );
    let server = deployment.serve()?;
    let peer_dir = std::env::temp_dir().join("writ-bench-node-oidc-provider");
    std::fs::create_dir_all(&peer_dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let peer = NodeOidc::start(&peer_dir, port)?;
    let peer_auth = basic(node_oidc::CLIENT_ID, node_oidc::CLIENT_SECRET);
    let backend = match &deployment.database_url {
        Some(_) => "PostgreSQL (synchronous_commit=on, fsync=on)",
        None => "embedded SQLite (WAL, synchronous=FULL)",
    };
    println!(
        "Writ (release, {backend}) vs node-oidc-provider {} (in memory)",
        peer.version
    );

    let writ_issue = issuance(&server.base, &writ_auth);
    let (issued, peer_issued) = compare(
        "client_credentials issuance",
        &writ_issue,
        &issuance(&peer.base, &peer_auth),
        seconds,
    )
    .await;
    let writ_introspect = introspection(
        format!("{}/introspect", server.base),
        &writ_auth,
        issued.iter().flat_map(tokens_of).collect(),
    );
    let peer_introspect = introspection(
        format!("{}/token/introspection", peer.base),
        &peer_auth,
        peer_issued.iter().flat_map(tokens_of).collect(),
    );
    let (introspected, _) =
        compare("introspection", &writ_introspect, &peer_introspect, seconds).await;

    println!("\nconstant rate at 70 % of Writ's maximum");
    let issue_rate = 0.7 * mean(&issued, Stats::per_second);
    let steady_issue = load::constant_rate(&writ_issue, issue_rate, 256, seconds).await;
    line(&format!("issuance @ {issue_rate:.0}/s"), &steady_issue);
    let introspect_rate = 0.7 * mean(&introspected, Stats::per_second);
    let steady_introspect =
        load::constant_rate(&writ_introspect, introspect_rate, 256, seconds).await;
    line(
        &format!("introspection @ {introspect_rate:.0}/s"),
        &steady_introspect,
    );

    // Every 200 from the token endpoint has its event; sampled tokens live.
    let delivered: u64 = issued.iter().map(|s| s.ok).sum::<u64>() + steady_issue.ok;
    server.stop();
    let restarted = deployment.serve()?;
    let events = count_issuance_events(&deployment).await?;
    let sample = issued
        .iter()
        .flat_map(tokens_of)
        .take(100)
        .collect::<Vec<_>>();
    let check = introspection(
        format!("{}/introspect", restarted.base),
        &writ_auth,
        sample.clone(),
    );
    let active = load::closed_loop(&check, 1, Duration::from_millis(500)).await;
    let all_active = active
        .samples
        .iter()
        .all(|body| body.contains("\"active\":true"));
    println!(
        "\nafter a restart: {events} issuance events for {delivered} token responses; {} sampled tokens introspected, all active: {all_active}",
        sample.len()
    );
    restarted.stop();
    if events != delivered as i64 || !all_active {
        return Err("the log does not match what was delivered".into());
    }
    Ok(())
}
