//! Counters the tests and, later, `/metrics` read.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub batches_started: AtomicU64,
    pub batches_rerun: AtomicU64,
    pub batches_committed: AtomicU64,
    pub commands_committed: AtomicU64,
    pub events_committed: AtomicU64,
    pub conflicts: AtomicU64,
    pub conflicts_retried: AtomicU64,
}

impl Metrics {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}
