//! The soak's report, in Markdown so that docs/reliability.md can keep it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::checks::Check;
use super::faults::Window;
use super::record::{quantile_ms, Failure, Sample, Second};

pub struct Report<'a> {
    pub duration: Duration,
    pub capacity: f64,
    pub rate: f64,
    pub seconds: &'a [Second],
    pub samples: &'a [Sample],
    pub windows: &'a [Window],
    pub failures: &'a [Failure],
    pub verdict: &'a [Check],
    pub ssf_polls: u64,
    pub ssf_failed_polls: u64,
}

fn clock(at: Duration) -> String {
    format!("{}:{:02}", at.as_secs() / 60, at.as_secs() % 60)
}

impl Report<'_> {
    fn latency(&self, outside_only: bool) -> (f64, f64, f64) {
        let mut all: Vec<u32> = self
            .seconds
            .iter()
            .enumerate()
            .filter(|(i, _)| !outside_only || super::checks::second_outside(*i, self.windows))
            .flat_map(|(_, s)| s.latencies_us.iter().copied())
            .collect();
        (
            quantile_ms(&mut all, 0.5),
            quantile_ms(&mut all, 0.99),
            quantile_ms(&mut all, 0.999),
        )
    }

    fn memory_table(&self, out: &mut String) {
        let mut roles: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
        for sample in self.samples {
            for (role, rss) in &sample.rss {
                let entry = roles.entry(role.as_str()).or_insert((*rss, *rss, 0));
                entry.1 = *rss;
                entry.2 = entry.2.max(*rss);
            }
        }
        let _ = writeln!(
            out,
            "| process | RSS first seen | RSS last | RSS peak |\n| --- | --- | --- | --- |"
        );
        for (role, (first, last, peak)) in roles {
            let _ = writeln!(
                out,
                "| {role} | {} MB | {} MB | {} MB |",
                first / 1_000_000,
                last / 1_000_000,
                peak / 1_000_000
            );
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let requests: u64 = self.seconds.iter().map(|s| s.requests).sum();
        let ok: u64 = self.seconds.iter().map(|s| s.flows_ok).sum();
        let failed: u64 = self.seconds.iter().map(|s| s.flows_failed).sum();
        let not_started: u64 = self.seconds.iter().map(|s| s.not_started).sum();
        let span = self.seconds.len().max(1) as f64;
        let (p50, p99, p999) = self.latency(false);
        let (q50, q99, q999) = self.latency(true);
        let lag = self
            .samples
            .iter()
            .filter_map(|s| s.projector_lag)
            .fold(0.0f64, f64::max);
        let _ = writeln!(
            out,
            "Soak of {} min: capacity {:.0} flows/s measured closed-loop, offered {:.0}/s open-loop.\n",
            self.duration.as_secs() / 60,
            self.capacity,
            self.rate
        );
        let _ = writeln!(
            out,
            "- {ok} flows succeeded, {failed} failed, {not_started} not started (512 in flight); \
             {requests} requests, {:.0}/s on average",
            requests as f64 / span
        );
        let _ = writeln!(
            out,
            "- request latency, whole run: p50 {p50:.1} ms, p99 {p99:.1} ms, p99.9 {p999:.1} ms; \
             in the seconds outside fault windows: p50 {q50:.1} ms, p99 {q99:.1} ms, p99.9 {q999:.1} ms"
        );
        let _ = writeln!(
            out,
            "- highest projector lag: {lag:.0} events; Shared Signals: {} polls, {} failed\n",
            self.ssf_polls, self.ssf_failed_polls
        );
        let _ = writeln!(
            out,
            "| fault | from | to (incl. grace) | failed flows in it |\n| --- | --- | --- | --- |"
        );
        for window in self.windows {
            let inside = self
                .failures
                .iter()
                .filter(|f| window.overlaps(f.started, f.at))
                .count();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {inside} |",
                window.fault,
                clock(window.start),
                clock(window.end)
            );
        }
        let _ = writeln!(out, "\n| check | result | detail |\n| --- | --- | --- |");
        for check in self.verdict {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                check.name,
                if check.passed { "pass" } else { "**FAIL**" },
                check.detail
            );
        }
        out.push('\n');
        self.memory_table(&mut out);
        let mut by_kind: BTreeMap<(&str, String), usize> = BTreeMap::new();
        for failure in self.failures {
            let kind: String = failure.message.chars().take(70).collect();
            *by_kind.entry((failure.flow, kind)).or_default() += 1;
        }
        if !by_kind.is_empty() {
            let _ = writeln!(
                out,
                "\n| flow | failure (first 70 characters) | count |\n| --- | --- | --- |"
            );
            for ((flow, kind), count) in by_kind {
                let kind = kind.replace('|', "\\|");
                let _ = writeln!(out, "| {flow} | {kind} | {count} |");
            }
        }
        let notable: Vec<&Failure> = self
            .failures
            .iter()
            .filter(|f| super::checks::outside(f, self.windows) || !super::checks::unavailable(f))
            .collect();
        if !notable.is_empty() {
            let _ = writeln!(
                out,
                "\nWrong answers, and failures outside every fault window (first 20):\n"
            );
            for failure in notable.iter().take(20) {
                let _ = writeln!(
                    out,
                    "- {} {}: {}",
                    clock(failure.at),
                    failure.flow,
                    failure.message
                );
            }
        }
        out
    }
}
