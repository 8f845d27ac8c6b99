//! `oha` as an open-loop load generator in its own process: requests
//! scheduled at a fixed rate whether or not earlier ones were answered,
//! latency counted from each request's scheduled time
//! (`--latency-correction`), answered and not-answered latencies apart
//! (`--stats-success-breakdown`). `cargo install oha --locked` puts it in
//! `~/.cargo/bin`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::procfs;

/// One form POST at a fixed rate.
pub struct OpenLoop<'a> {
    pub url: &'a str,
    pub authorization: &'a str,
    pub body: &'a str,
    pub rate: f64,
    pub connections: usize,
    pub duration: Duration,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer, by oha's reason.
    pub errors: BTreeMap<String, u64>,
    pub elapsed: Duration,
    /// Of the 200s, from their scheduled time.
    pub admitted_p50: Duration,
    pub admitted_p99: Duration,
    /// Of every other answer (the shed ones).
    pub refused_p50: Duration,
    pub refused_p99: Duration,
    /// oha's CPU time as a share of all cores over its run.
    pub cpu_share: f64,
}

impl Outcome {
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    pub fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }
}

fn seconds(value: &Value) -> Duration {
    Duration::from_secs_f64(value.as_f64().unwrap_or(0.0).max(0.0))
}

pub fn run(load: &OpenLoop) -> Result<Outcome, String> {
    let cpu_before = procfs::waited_children_cpu()?;
    let started = Instant::now();
    let output = Command::new("oha")
        .args(["--no-tui", "--output-format", "json"])
        .args(["--latency-correction", "--stats-success-breakdown"])
        .arg("-z")
        .arg(format!("{}s", load.duration.as_secs().max(1)))
        .arg("-q")
        .arg(format!("{}", load.rate.round().max(1.0)))
        .arg("-c")
        .arg(load.connections.to_string())
        .args(["-m", "POST"])
        .arg("-H")
        .arg(format!("authorization: {}", load.authorization))
        .args(["-H", "content-type: application/x-www-form-urlencoded"])
        .arg("-d")
        .arg(load.body)
        .arg(load.url)
        .output()
        .map_err(|e| format!("oha: {e} (cargo install oha --locked)"))?;
    let wall = started.elapsed();
    let cpu = procfs::waited_children_cpu()?.saturating_sub(cpu_before);
    if !output.status.success() {
        return Err(format!(
            "oha {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let report: Value = serde_json::from_slice(&output.stdout).map_err(|e| format!("oha: {e}"))?;
    let counts = |field: &str| -> BTreeMap<String, u64> {
        report[field]
            .as_object()
            .map(|all| {
                all.iter()
                    .map(|(key, n)| (key.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Outcome {
        statuses: counts("statusCodeDistribution")
            .into_iter()
            .filter_map(|(status, n)| Some((status.parse().ok()?, n)))
            .collect(),
        errors: counts("errorDistribution"),
        elapsed: seconds(&report["summary"]["total"]),
        admitted_p50: seconds(&report["latencyPercentilesSuccessful"]["p50"]),
        admitted_p99: seconds(&report["latencyPercentilesSuccessful"]["p99"]),
        refused_p50: seconds(&report["latencyPercentilesNotSuccessful"]["p50"]),
        refused_p99: seconds(&report["latencyPercentilesNotSuccessful"]["p99"]),
        cpu_share: cpu.as_secs_f64() / (wall.as_secs_f64() * cores as f64).max(1e-9),
    })
}
