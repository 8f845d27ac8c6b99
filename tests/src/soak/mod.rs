//! The soak (issue 28): the split deployment on PostgreSQL with Kafka under
//! mixed traffic at a fraction of its measured capacity for a long run,
//! with faults injected on a schedule, then checked end to end. Run by
//! `tests/src/bin/soak.rs`; docs/reliability.md keeps its report.
//!
//! - [`setup`] starts a private PostgreSQL cluster, a durable broker and the
//!   processes, and registers the clients and people the traffic uses.
//! - [`flows`] are what the traffic does, each a short user story over raw
//!   HTTP that checks what it reads (read-your-writes included).
//! - [`drive`] offers them open-loop at a fixed rate; [`record`] keeps what
//!   happened each second and every write Writ acknowledged.
//! - [`faults`] is the schedule; [`receivers`] are the topic, the feed and
//!   a Shared Signals poller; [`checks`] holds all of it against the log.
//! - [`chart`] draws the run as an SVG.

pub mod chart;
pub mod checks;
pub mod drive;
pub mod faults;
pub mod flows;
pub mod http;
pub mod receivers;
pub mod record;
pub mod report;
pub mod setup;

/// A mutex's guard even after a panic elsewhere: the soak reports what it
/// saw rather than dying on a poisoned lock.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
