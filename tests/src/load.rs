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
}

#[derive(Debug, Default)]
pub struct Stats {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    /// A few 200 bodies, for checks after the run.
    pub samples: Vec<String>,
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
    }
}

fn connection() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn one(client: &reqwest::Client, target: &Target, index: usize) -> Option<String> {
    let response = client
        .post(&target.url)
        .header("authorization", &target.authorization)
        .header("content-type", "application/x-www-form-urlencoded")
        .body((target.body)(index))
        .send()
        .await
        .ok()?;
    let ok = response.status() == 200;
    let body = response.text().await.ok()?;
    ok.then_some(body)
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
                    Some(body) => {
                        stats.ok += 1;
                        stats.latencies.push(sent.elapsed());
                        if stats.samples.len() < 8 {
                            stats.samples.push(body);
                        }
                    }
                    None => stats.failed += 1,
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

/// Requests scheduled at `rate` per second for `duration`, each on a free
/// connection from a pool of `connections`; latency counts from the
/// scheduled time, so a stalled server shows up in p99.
pub async fn constant_rate(
    target: &Target,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> Stats {
    let pool: Arc<Mutex<Vec<reqwest::Client>>> =
        Arc::new(Mutex::new((0..connections).map(|_| connection()).collect()));
    let started = Instant::now();
    let total = (rate * duration.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut tasks = Vec::with_capacity(total);
    for index in 0..total {
        let scheduled = started + interval * index as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let (target, pool) = (target.clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            let client = pool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or_else(connection);
            let outcome = one(&client, &target, index).await;
            pool.lock().unwrap_or_else(|p| p.into_inner()).push(client);
            (outcome.is_some(), scheduled.elapsed())
        }));
    }
    let mut stats = Stats::default();
    for task in futures::future::join_all(tasks).await {
        let (ok, latency) = task.unwrap_or((false, Duration::ZERO));
        if ok {
            stats.ok += 1;
            stats.latencies.push(latency);
        } else {
            stats.failed += 1;
        }
    }
    stats.elapsed = started.elapsed();
    stats.latencies.sort();
    stats
}
