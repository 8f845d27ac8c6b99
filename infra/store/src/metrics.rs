//! The store's counters, lock-free on the commit path. They are
//! `prometheus-client` metrics: a process registers them, with whatever
//! else it exposes, and the edge serves the registry at `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Something a process exposes at `/metrics` (the store's counters, the
/// projector's lag), registered once when the process starts.
pub trait Source: Send + Sync {
    fn register(&self, registry: &mut Registry);
}

/// The committer's and the executor's counters.
#[derive(Debug)]
pub struct Metrics {
    pub batches_started: Counter,
    pub batches_rerun: Counter,
    pub batches_committed: Counter,
    pub commands_committed: Counter,
    pub events_committed: Counter,
    pub conflicts: Counter,
    pub conflicts_retried: Counter,
    /// Commands per committed batch.
    pub batch_sizes: Histogram,
}

const BATCH_BOUNDS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

impl Default for Metrics {
    fn default() -> Self {
        Self {
            batches_started: Counter::default(),
            batches_rerun: Counter::default(),
            batches_committed: Counter::default(),
            commands_committed: Counter::default(),
            events_committed: Counter::default(),
            conflicts: Counter::default(),
            conflicts_retried: Counter::default(),
            batch_sizes: Histogram::new(BATCH_BOUNDS),
        }
    }
}

impl Source for Metrics {
    /// Counters are registered without their `_total`, which the
    /// exposition adds.
    fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "writ_commit_batches",
                "committed group-commit batches",
                &self.batches_committed,
            ),
            (
                "writ_commit_batch_reruns",
                "batches re-run after a conflict at insert",
                &self.batches_rerun,
            ),
            (
                "writ_commands_committed",
                "commands committed",
                &self.commands_committed,
            ),
            (
                "writ_events_committed",
                "events committed",
                &self.events_committed,
            ),
            (
                "writ_conflicts",
                "commands that lost a conflict in a batch",
                &self.conflicts,
            ),
            (
                "writ_conflicts_retried",
                "commands re-decided after a conflict",
                &self.conflicts_retried,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "writ_commit_batch_size",
            "commands per committed batch",
            self.batch_sizes.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn batch_sizes_are_cumulative_and_counters_keep_their_names() {
        let metrics = Metrics::default();
        metrics.batch_sizes.observe(3.0);
        metrics.batch_sizes.observe(40.0);
        metrics.batches_committed.inc_by(2);
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap_or_else(|err| panic!("{err}"));
        for line in [
            "writ_commit_batch_size_bucket{le=\"2.0\"} 0",
            "writ_commit_batch_size_bucket{le=\"4.0\"} 1",
            "writ_commit_batch_size_bucket{le=\"64.0\"} 2",
            "writ_commit_batch_size_count 2",
            "writ_commit_batches_total 2",
            "writ_conflicts_retried_total 0",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in {out}");
        }
    }
}
