//! A small HTTP load generator for the benchmarks: closed loop over N
//! keep-alive connections, or open loop at a constant rate with latency
//! measured from each request's scheduled time (no coordinated omission;
//! [`paced`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

mod paced;

pub use paced::constant_rate;

/// One kind of request against one server.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub authorization: String,
    /// The form body of the i-th request.
    pub body: Arc<dyn Fn(usize) -> String + Send + Sync>,
    /// The i-th request's `DPoP` proof (RFC 9449), when it sends one.
    pub dpop: Option<Arc<dyn Fn(usize) -> String + Send + Sync>>,
}

const FAILURES_KEPT: usize = 5;

/// `N {what}, p50 …, p99 …, max …` of latencies measured one by one (the
/// latency benchmarks' line), sorting them.
pub fn spread(samples: &mut [Duration], what: &str) -> String {
    samples.sort();
    let at = |p: f64| {
        samples
            .get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    format!(
        "{} {what}, p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        at(0.5),
        at(0.99),
        samples.last().copied().unwrap_or_default()
    )
}

#[derive(Debug, Default)]
pub struct Stats {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    /// A few 200 bodies, for checks after the run.
    pub samples: Vec<String>,
    /// Why the first few failed requests failed.
    pub failures: Vec<String>,
    /// Open loop: how late the generator sent each request whose connection
    /// was free before it was due, its timer's share of a latency.
    pub timer_lateness: Vec<Duration>,
}

impl Stats {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    pub fn timer_lateness_percentile(&self, p: f64) -> Duration {
        percentile(&self.timer_lateness, p)
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latencies.extend(other.latencies);
        self.timer_lateness.extend(other.timer_lateness);
        if self.samples.len() < 200 {
            self.samples.extend(other.samples);
        }
        self.failures.extend(other.failures);
        self.failures.truncate(FAILURES_KEPT);
    }

    fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.failures.len() < FAILURES_KEPT {
            self.failures.push(why);
        }
    }
}

/// Of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn connection() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A 200's body, or why there was none.
async fn one(client: &reqwest::Client, target: &Target, index: usize) -> Result<String, String> {
    let mut request = client
        .post(&target.url)
        .header("content-type", "application/x-www-form-urlencoded");
    // Clients that authenticate in the body (client assertions) send none.
    if !target.authorization.is_empty() {
        request = request.header("authorization", &target.authorization);
    }
    if let Some(proof) = &target.dpop {
        request = request.header("dpop", proof(index));
    }
    let response = request
        .body((target.body)(index))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| format!("{e:?}"))?;
    if status == 200 {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// `connections` workers, each sending its next request when the previous
/// one is answered, for `duration`.
pub async fn closed_loop(target: &Target, connections: usize, duration: Duration) -> Stats {
    let started = Instant::now();
    let deadline = started + duration;
    let workers = (0..connections).map(|worker| {
        let target = target.clone();
        tokio::spawn(async move {
            let client = connection();
            let mut stats = Stats::default();
            let mut index = worker;
            while Instant::now() < deadline {
                let sent = Instant::now();
                match one(&client, &target, index).await {
                    Ok(body) => {
                        stats.ok += 1;
                        stats.latencies.push(sent.elapsed());
                        if stats.samples.len() < 8 {
                            stats.samples.push(body);
                        }
                    }
                    Err(why) => stats.fail(why),
                }
                index += connections;
            }
            stats
        })
    });
    let mut total = Stats::default();
    for worker in futures::future::join_all(workers).await {
        total.merge(worker.unwrap_or_default());
    }
    total.elapsed = started.elapsed();
    total.latencies.sort();
    total
}
