//! `writ replay`: the log replayed from the start into fresh tables, kept
//! as a named snapshot (at the head, a cursor or a time), compared with the
//! live read model (`--verify`), or put in its place (`--swap`). Only the
//! swap changes the live tables.

use std::time::{Duration, Instant};

use anyhow::bail;
use writ_projector::replay::{replay_into_snapshot, snapshot_location, Progress, Until};
use writ_projector::swap::replay_and_swap;
use writ_projector::{rebuild_and_compare_with_progress, Side};

use crate::args::ReplayArgs;
use crate::context::Context;

pub async fn run(context: Context, args: ReplayArgs) -> anyhow::Result<()> {
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
        replayed.events,
        snapshot_location(target, name),
        replayed.progress.started.elapsed().as_secs_f64(),
        rate
    );
    Ok(())
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

/// A progress line on stderr at most once a second: events, rate, ETA.
#[derive(Default)]
struct ProgressLine {
    shown_at: Option<Instant>,
    shown: bool,
}

impl ProgressLine {
    fn show(&mut self, progress: &Progress) {
        let now = Instant::now();
        let due = self.shown_at.map_or(
            now.duration_since(progress.started) >= Duration::from_secs(1),
            |at| now.duration_since(at) >= Duration::from_secs(1),
        );
        if !due {
            return;
        }
        self.shown_at = Some(now);
        self.shown = true;
        let rate = progress.events_per_second();
        let left = progress.total.saturating_sub(progress.replayed);
        let percent = 100.0 * progress.replayed as f64 / progress.total.max(1) as f64;
        eprintln!(
            "replay: {} of {} events ({percent:.0} %), {rate:.0} events/s, ETA {:.0} s",
            progress.replayed,
            progress.total,
            left as f64 / rate.max(1.0)
        );
    }

    fn finish(&mut self) {
        self.shown_at = None;
    }
}
