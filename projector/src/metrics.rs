//! What the projector reports at `/metrics`: how far behind the log it
//! is, in events and seconds, how much it has projected, and whether a
//! projection stopped on an event it cannot read.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use writ_store::metrics::{gauge_line, Source};

#[derive(Debug, Default)]
pub struct ProjectorMetrics {
    pub events_projected: AtomicU64,
    /// Committed events not yet projected, as last measured.
    pub lag_events: AtomicU64,
    /// Age of the newest projected event while catching up; zero when idle.
    pub lag_micros: AtomicU64,
    /// 1 while a projection is stopped on a poison event.
    pub stopped: AtomicU64,
    /// 1 while this process holds the projector lock (the active one).
    pub active: AtomicU64,
}

impl ProjectorMetrics {
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }
}

impl Source for ProjectorMetrics {
    fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let name = "writ_projector_events_projected_total";
        let _ = writeln!(
            out,
            "# HELP {name} events the projector applied\n# TYPE {name} counter\n{name} {}",
            get(&self.events_projected)
        );
        gauge_line(
            out,
            "writ_projector_lag_events",
            "committed events not yet projected",
            get(&self.lag_events) as f64,
        );
        gauge_line(
            out,
            "writ_projector_lag_seconds",
            "age of the newest projected event while catching up",
            get(&self.lag_micros) as f64 / 1e6,
        );
        gauge_line(
            out,
            "writ_projections_stopped",
            "projections stopped on an event they cannot read",
            get(&self.stopped) as f64,
        );
        gauge_line(
            out,
            "writ_projector_active",
            "1 when this process is the active projector",
            get(&self.active) as f64,
        );
    }
}
