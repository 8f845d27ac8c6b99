//! What happened in each second of the run, and every write Writ
//! acknowledged, for the checks and the chart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lock;

/// Failures kept word for word; past this, their first 120 characters.
const ERRORS_KEPT: usize = 2_000;

#[derive(Debug, Default, Clone)]
pub struct Second {
    /// HTTP requests answered, whatever their status.
    pub requests: u64,
    pub latencies_us: Vec<u32>,
    pub flows_ok: u64,
    pub flows_failed: u64,
    /// Flows the generator did not start because too many were in flight.
    pub not_started: u64,
}

/// A failed flow: when it started and ended, so that one caught in a
/// fault's window and failing after it is still the fault's.
#[derive(Debug, Clone)]
pub struct Failure {
    pub started: Duration,
    pub at: Duration,
    pub flow: &'static str,
    /// The first failures' whole message; later ones keep only its first
    /// line, so that no failure goes unjudged.
    pub message: String,
}

/// One sample of the processes, taken every second.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    /// Resident memory per process, by role.
    pub rss: Vec<(String, u64)>,
    /// `writ_projector_lag_events` of the active projector.
    pub projector_lag: Option<f64>,
}

/// Writes answered with success: each must be in the log at the end.
#[derive(Debug, Default)]
pub struct Acknowledged {
    /// `jti` of every access token handed out.
    pub issued: Vec<String>,
    /// `jti` of every access token revoked with a 200.
    pub revoked_tokens: Vec<String>,
    /// Grants (`gid`) ended by revoking their refresh token.
    pub revoked_grants: Vec<String>,
    /// Consents withdrawn on the account page, per `sub`.
    pub withdrawn: HashMap<String, u64>,
}

pub struct Recorder {
    started: Mutex<Instant>,
    seconds: Mutex<Vec<Second>>,
    failures: Mutex<(Vec<Failure>, u64)>,
    samples: Mutex<Vec<Sample>>,
    acknowledged: Mutex<Acknowledged>,
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            started: Mutex::new(Instant::now()),
            seconds: Mutex::new(Vec::new()),
            failures: Mutex::new((Vec::new(), 0)),
            samples: Mutex::new(Vec::new()),
            acknowledged: Mutex::new(Acknowledged::default()),
        }
    }

    pub fn elapsed(&self) -> Duration {
        lock(&self.started).elapsed()
    }

    /// Starts the clock again with nothing recorded but the acknowledged
    /// writes, which the log must hold whenever they were made.
    pub fn restart(&self) {
        *lock(&self.seconds) = Vec::new();
        *lock(&self.failures) = (Vec::new(), 0);
        *lock(&self.samples) = Vec::new();
        *lock(&self.started) = Instant::now();
    }

    fn with_second(&self, at: Duration, change: impl FnOnce(&mut Second)) {
        let index = at.as_secs() as usize;
        let mut seconds = lock(&self.seconds);
        if seconds.len() <= index {
            seconds.resize_with(index + 1, Second::default);
        }
        change(&mut seconds[index]);
    }

    pub fn request(&self, took: Duration) {
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.with_second(self.elapsed(), |second| {
            second.requests += 1;
            second.latencies_us.push(micros);
        });
    }

    pub fn flow_ok(&self) {
        self.with_second(self.elapsed(), |second| second.flows_ok += 1);
    }

    pub fn flow_failed(&self, started: Duration, flow: &'static str, message: String) {
        let at = self.elapsed();
        self.with_second(at, |second| second.flows_failed += 1);
        let mut failures = lock(&self.failures);
        failures.1 += 1;
        let message = if failures.0.len() < ERRORS_KEPT {
            message
        } else {
            message.chars().take(120).collect()
        };
        failures.0.push(Failure {
            started,
            at,
            flow,
            message,
        });
    }

    pub fn not_started(&self) {
        self.with_second(self.elapsed(), |second| second.not_started += 1);
    }

    pub fn sample(&self, sample: Sample) {
        lock(&self.samples).push(sample);
    }

    pub fn acknowledge(&self, change: impl FnOnce(&mut Acknowledged)) {
        change(&mut lock(&self.acknowledged));
    }

    /// Everything acknowledged so far, leaving nothing behind.
    pub fn take_acknowledged(&self) -> Acknowledged {
        std::mem::take(&mut lock(&self.acknowledged))
    }

    pub fn seconds(&self) -> Vec<Second> {
        lock(&self.seconds).clone()
    }

    /// The failures kept, and how many there were in all.
    pub fn failures(&self) -> (Vec<Failure>, u64) {
        lock(&self.failures).clone()
    }

    pub fn samples(&self) -> Vec<Sample> {
        lock(&self.samples).clone()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// The `q`-quantile of `latencies` (sorted in place), in milliseconds.
pub fn quantile_ms(latencies: &mut [u32], q: f64) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    latencies.sort_unstable();
    let index = ((latencies.len() as f64 * q) as usize).min(latencies.len() - 1);
    f64::from(latencies[index]) / 1000.0
}
