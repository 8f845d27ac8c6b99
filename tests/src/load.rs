//! A small HTTP load generator for the benchmarks: closed loop over N
//! keep-alive connections, or open loop at a constant rate with latency
//! measured from each request's scheduled time (no coordinated omission).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
}

impl Stats {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latencies.extend(other.latencies);
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

/// Requests scheduled at `rate` per second for `duration`, each on the
/// next free one of `connections` connections; latency counts from the
/// scheduled time, so a stalled server (or a request waiting for a free
/// connection) shows up in p99. The pool is fixed, as wrk2's is: opening
/// new connections whenever the generator fell behind left thousands of
/// them half-open and failing.
pub async fn constant_rate(
    target: &Target,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> Stats {
    let pool: Arc<Mutex<Vec<reqwest::Client>>> =
        Arc::new(Mutex::new((0..connections).map(|_| connection()).collect()));
    let free = Arc::new(tokio::sync::Semaphore::new(connections));
    let started = Instant::now();
    let total = (rate * duration.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut tasks = Vec::with_capacity(total);
    for index in 0..total {
        let scheduled = started + interval * index as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let (target, pool, free) = (target.clone(), pool.clone(), free.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(_permit) = free.acquire().await else {
                return (Err("the pool closed".to_owned()), scheduled.elapsed());
            };
            // A permit guarantees a client in the pool.
            let client = pool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or_else(connection);
            let outcome = one(&client, &target, index).await;
            pool.lock().unwrap_or_else(|p| p.into_inner()).push(client);
            (outcome.map(drop), scheduled.elapsed())
        }));
    }
    let mut stats = Stats::default();
    for task in futures::future::join_all(tasks).await {
        match task {
            Ok((Ok(()), latency)) => {
                stats.ok += 1;
                stats.latencies.push(latency);
            }
            Ok((Err(why), _)) => stats.fail(why),
            Err(panicked) => stats.fail(panicked.to_string()),
        }
    }
    stats.elapsed = started.elapsed();
    stats.latencies.sort();
    stats
}
