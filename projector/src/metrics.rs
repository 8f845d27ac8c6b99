//! What the projector reports at `/metrics`: how far behind the log it
//! is, in events and seconds, how much it has projected, and whether a
//! projection stopped on an event it cannot read.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use writ_store::metrics::Source;

#[derive(Debug, Default)]
pub struct ProjectorMetrics {
    pub events_projected: Counter,
    /// Committed events not yet projected, as last measured.
    pub lag_events: Gauge,
    /// Age of the newest projected event while catching up; zero when idle.
    pub lag_seconds: Gauge<f64, AtomicU64>,
    /// 1 while a projection is stopped on a poison event.
    pub stopped: Gauge,
    /// 1 while this process holds the projector lock (the active one).
    pub active: Gauge,
}

impl Source for ProjectorMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "writ_projector_events_projected",
            "events the projector applied",
            self.events_projected.clone(),
        );
        registry.register(
            "writ_projector_lag_events",
            "committed events not yet projected",
            self.lag_events.clone(),
        );
        registry.register(
            "writ_projector_lag_seconds",
            "age of the newest projected event while catching up",
            self.lag_seconds.clone(),
        );
        registry.register(
            "writ_projections_stopped",
            "projections stopped on an event they cannot read",
            self.stopped.clone(),
        );
        registry.register(
            "writ_projector_active",
            "1 when this process is the active projector",
            self.active.clone(),
        );
    }
}
