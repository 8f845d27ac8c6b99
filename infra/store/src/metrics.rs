//! The store's counters and histograms, lock-free on the commit path, and
//! the Prometheus text they render as; the edge serves them at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The store's counters: the committer's and the executor's.
#[derive(Debug, Default)]
pub struct Metrics {
    pub batches_started: AtomicU64,
    pub batches_rerun: AtomicU64,
    pub batches_committed: AtomicU64,
    pub commands_committed: AtomicU64,
    pub events_committed: AtomicU64,
    pub conflicts: AtomicU64,
    pub conflicts_retried: AtomicU64,
    /// Commands per committed batch.
    pub batch_sizes: Histogram<BATCH_BUCKETS>,
}

impl Histogram<BATCH_BUCKETS> {
    pub fn observe_count(&self, value: u64) {
        self.observe(value as f64, &BATCH_BOUNDS.map(|b| b as f64));
    }
}

impl Metrics {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut String) {
        let counters = [
            (
                "writ_commit_batches_total",
                "committed group-commit batches",
                &self.batches_committed,
            ),
            (
                "writ_commit_batch_reruns_total",
                "batches re-run after a conflict at insert",
                &self.batches_rerun,
            ),
            (
                "writ_commands_committed_total",
                "commands committed",
                &self.commands_committed,
            ),
            (
                "writ_events_committed_total",
                "events committed",
                &self.events_committed,
            ),
            (
                "writ_conflicts_total",
                "commands that lost a conflict in a batch",
                &self.conflicts,
            ),
            (
                "writ_conflicts_retried_total",
                "commands re-decided after a conflict",
                &self.conflicts_retried,
            ),
        ];
        for (name, help, counter) in counters {
            counter_line(out, name, help, Self::get(counter));
        }
        self.batch_sizes.render(
            out,
            "writ_commit_batch_size",
            "commands per committed batch",
            "",
            &BATCH_BOUNDS.map(|b| b as f64),
        );
    }
}

pub const BATCH_BUCKETS: usize = 9;
const BATCH_BOUNDS: [u64; BATCH_BUCKETS] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// A cumulative histogram with fixed bounds (Prometheus `le` buckets).
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    buckets: [AtomicU64; N],
    count: AtomicU64,
    /// Sum in millionths, so it stays an integer counter.
    sum_micros: AtomicU64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Histogram<N> {
    pub fn observe(&self, value: f64, bounds: &[f64; N]) {
        for (bucket, bound) in self.buckets.iter().zip(bounds) {
            if value <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6).max(0.0) as u64, Ordering::Relaxed);
    }

    pub fn render(
        &self,
        out: &mut String,
        name: &str,
        help: &str,
        labels: &str,
        bounds: &[f64; N],
    ) {
        if labels.is_empty() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        }
        let sep = if labels.is_empty() { "" } else { "," };
        for (bucket, bound) in self.buckets.iter().zip(bounds) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_sum{braces} {sum}\n{name}_count{braces} {count}"
        );
    }
}

fn counter_line(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

pub fn gauge_line(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

/// Something else a process exposes (the projector's lag, for one).
pub trait Source: Send + Sync {
    fn render(&self, out: &mut String);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_are_cumulative_and_render_as_prometheus_text() {
        let metrics = Metrics::default();
        metrics.batch_sizes.observe_count(3);
        metrics.batch_sizes.observe_count(40);
        Metrics::bump(&metrics.batches_committed, 2);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains("writ_commit_batch_size_bucket{le=\"2\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("writ_commit_batch_size_bucket{le=\"4\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("writ_commit_batch_size_bucket{le=\"64\"} 2"),
            "{out}"
        );
        assert!(out.contains("writ_commit_batch_size_count 2"), "{out}");
        assert!(out.contains("writ_commit_batches_total 2"), "{out}");
    }
}
