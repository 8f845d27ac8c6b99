//! `writ replay`: the log replayed from the start into fresh tables, kept
//! as a named snapshot (at the head, a cursor or a time), compared with the
//! live read model (`--verify`), or put in its place (`--swap`). Only the
//! swap changes the live tables.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::bail;
use writ_projector::replay::{replay_into_snapshot, snapshot_location, Progress, Until};
use writ_projector::swap::replay_and_swap;
use writ_projector::{rebuild_and_compare_with_progress, Side};

use crate::args::ReplayArgs;
use crate::context::Context;

pub async fn run(context: Context, args: ReplayArgs) -> anyhow::Result<()> {
    without_huge_pages();
    let until = match (&args.as_of, &args.position) {
        (Some(time), None) => Until::RecordedAt(*time),
        (None, Some(cursor)) => Until::Cursor(*cursor),
        (None, None) => Until::Head,
        (Some(_), Some(_)) => bail!("give --as-of or --position, not both"),
    };
    let mut progress = ProgressLine::default();
    if args.swap {
        let swapped =
            replay_and_swap(context.store.target(), &mut |p: &Progress| progress.show(p)).await?;
        progress.finish();
        outln!(
            "the live read model is now a replay of the log ({} events; the last {} applied while writers waited {:.1} ms, lock attempt {})",
            swapped.events,
            swapped.tail,
            swapped.held.as_secs_f64() * 1000.0,
            swapped.attempts
        );
        return Ok(());
    }
    if args.verify {
        if until != Until::Head || args.into.is_some() {
            bail!("--verify compares the whole log with the live tables; it takes no --as-of, --position or --into");
        }
        return verify(&context, &mut progress).await;
    }
    let name = args.into.as_deref().unwrap_or("replay");
    let target = context.store.target();
    let replayed =
        replay_into_snapshot(target, name, until, &mut |p: &Progress| progress.show(p)).await?;
    progress.finish();
    let rate = replayed.progress.events_per_second();
    let last = replayed
        .last
        .map_or_else(|| "none".to_owned(), |cursor| cursor.to_string());
    outln!(
        "replayed {} events into {} in {:.1} s ({:.0} events/s); last cursor {last}",
        replayed.progress.replayed,
        snapshot_location(target, name),
        replayed.progress.started.elapsed().as_secs_f64(),
        rate
    );
    Ok(())
}

/// A replay allocates hundreds of megabytes that live for seconds. With
/// transparent huge pages the kernel zeroes, and may first compact, 2 MiB
/// for each fault: on 1,000,000 events that was a second of system time,
/// a tenth of the replay (ADR 0020). The setting is this process's only;
/// where it cannot be made the replay runs as it would have.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(%err, "transparent huge pages stay on");
    }
}

async fn verify(context: &Context, progress: &mut ProgressLine) -> anyhow::Result<()> {
    let mut replayed = 0;
    let differences = rebuild_and_compare_with_progress(&context.store, &mut |p: &Progress| {
        replayed = p.replayed;
        progress.show(p);
    })
    .await?;
    progress.finish();
    if differences.is_empty() {
        outln!("the read model equals a replay of the log ({replayed} events)");
        return Ok(());
    }
    for table in &differences {
        outln!(
            "{}: {} row(s) only in the live table, {} only in the replay",
            table.table,
            table.only_live,
            table.only_rebuilt
        );
        for row in &table.rows {
            let side = match row.side {
                Side::Live => "live  ",
                Side::Rebuilt => "replay",
            };
            outln!("  {side} {}", row.row);
        }
    }
    bail!(
        "the read model differs from a replay of the log in {} table(s)",
        differences.len()
    )
}

/// Progress on stderr: on a terminal a bar redrawn in place ten times a
/// second; otherwise (a log, a pipe) a line once a second.
struct ProgressLine {
    shown_at: Option<Instant>,
    shown: bool,
    terminal: bool,
}

impl Default for ProgressLine {
    fn default() -> Self {
        Self {
            shown_at: None,
            shown: false,
            terminal: std::io::stderr().is_terminal(),
        }
    }
}

const BAR_WIDTH: usize = 30;

impl ProgressLine {
    fn show(&mut self, progress: &Progress) {
        let every = if self.terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        let now = Instant::now();
        let since = self.shown_at.unwrap_or(progress.started);
        if now.duration_since(since) < every {
            return;
        }
        self.shown_at = Some(now);
        self.shown = true;
        if self.terminal {
            eprint!("\rreplay {} {}\x1b[K", bar(progress), figures(progress));
        } else {
            eprintln!("replay: {}", figures(progress));
        }
    }

    /// Ends the bar's line, so what follows starts on a line of its own.
    fn finish(&mut self) {
        if self.terminal && self.shown {
            eprintln!();
        }
        self.shown_at = None;
        self.shown = false;
    }
}

fn done(progress: &Progress) -> f64 {
    (progress.replayed as f64 / progress.total.max(1) as f64).min(1.0)
}

/// `[#####     ]`, filled as far as the replay has come.
fn bar(progress: &Progress) -> String {
    let filled = (done(progress) * BAR_WIDTH as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), " ".repeat(BAR_WIDTH - filled))
}

/// Events so far, the share, the rate and the time left at that rate.
fn figures(progress: &Progress) -> String {
    let rate = progress.events_per_second();
    let left = progress.total.saturating_sub(progress.replayed);
    format!(
        "{} of {} events ({:.0} %), {rate:.0} events/s, ETA {:.0} s",
        progress.replayed,
        progress.total,
        100.0 * done(progress),
        left as f64 / rate.max(1.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_seconds_in(replayed: u64, total: u64) -> Progress {
        Progress {
            replayed,
            total,
            started: Instant::now() - Duration::from_secs(2),
        }
    }

    #[test]
    fn the_bar_fills_with_the_share_replayed_and_never_overflows() {
        assert_eq!(
            bar(&two_seconds_in(0, 100)),
            format!("[{}]", " ".repeat(30))
        );
        assert_eq!(
            bar(&two_seconds_in(50, 100)),
            format!("[{}{}]", "#".repeat(15), " ".repeat(15))
        );
        // The log grows while it is replayed.
        assert_eq!(
            bar(&two_seconds_in(120, 100)),
            format!("[{}]", "#".repeat(30))
        );
    }

    #[test]
    fn the_figures_give_the_rate_and_the_time_left() {
        let line = figures(&two_seconds_in(2000, 6000));
        assert!(
            line.starts_with("2000 of 6000 events (33 %), 1000 events/s"),
            "{line}"
        );
        assert!(line.ends_with("ETA 4 s"), "{line}");
    }
}
