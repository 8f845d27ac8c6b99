//! The end of the run, held against the log: what Writ acknowledged is
//! there, every revocation reached each receiver in order, memory stayed
//! under its bound, and nothing failed outside a fault's window.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::PgPool;
use writ_domain::cursor::Cursor;

use super::faults::Window;
use super::receivers::Received;
use super::record::{Acknowledged, Failure, Sample, Second};

/// One line of the verdict.
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

fn check(name: &str, passed: bool, detail: String) -> Check {
    Check {
        name: name.to_owned(),
        passed,
        detail,
    }
}

async fn strings(pool: &PgPool, sql: &str) -> Result<HashSet<String>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<String>>(sql)
        .fetch_all(pool)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

fn missing<'a>(wanted: impl IntoIterator<Item = &'a String>, have: &HashSet<String>) -> usize {
    wanted
        .into_iter()
        .filter(|item| !have.contains(*item))
        .count()
}

/// Every acknowledged write against the log.
pub async fn acknowledged_writes(
    pool: &PgPool,
    acknowledged: &Acknowledged,
) -> Result<Vec<Check>, sqlx::Error> {
    let issued = strings(
        pool,
        "SELECT payload->'AccessTokenIssued'->>'jti' FROM events WHERE event_type = 'AccessTokenIssued'",
    )
    .await?;
    let mut revoked = strings(
        pool,
        "SELECT payload->'AccessTokenRevoked'->>'jti' FROM events WHERE event_type = 'AccessTokenRevoked'",
    )
    .await?;
    revoked.extend(
        strings(
            pool,
            "SELECT json_array_elements_text(payload->'GrantRevoked'->'jtis') FROM events \
             WHERE event_type = 'GrantRevoked'",
        )
        .await?,
    );
    let grants = strings(
        pool,
        "SELECT aggregate_id FROM events WHERE event_type = 'GrantRevoked'",
    )
    .await?;
    let withdrawn: HashMap<String, i64> = sqlx::query_as::<_, (Option<String>, i64)>(
        "SELECT payload->'ConsentWithdrawn'->>'sub', count(*) FROM events \
         WHERE event_type = 'ConsentWithdrawn' GROUP BY 1",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .filter_map(|(sub, count)| Some((sub?, count)))
    .collect();
    let short_withdrawals = acknowledged
        .withdrawn
        .iter()
        .filter(|(sub, count)| withdrawn.get(*sub).copied().unwrap_or(0) < **count as i64)
        .count();
    let lost = |wanted: &Vec<String>, have: &HashSet<String>| missing(wanted, have);
    Ok(vec![
        check(
            "issued tokens in the log",
            lost(&acknowledged.issued, &issued) == 0,
            format!(
                "{} acknowledged, {} missing",
                acknowledged.issued.len(),
                lost(&acknowledged.issued, &issued)
            ),
        ),
        check(
            "revoked tokens in the log",
            lost(&acknowledged.revoked_tokens, &revoked) == 0,
            format!(
                "{} acknowledged, {} missing",
                acknowledged.revoked_tokens.len(),
                lost(&acknowledged.revoked_tokens, &revoked)
            ),
        ),
        check(
            "revoked grants in the log",
            lost(&acknowledged.revoked_grants, &grants) == 0,
            format!(
                "{} acknowledged, {} missing",
                acknowledged.revoked_grants.len(),
                lost(&acknowledged.revoked_grants, &grants)
            ),
        ),
        check(
            "withdrawn consents in the log",
            short_withdrawals == 0,
            format!(
                "{} acknowledged, {short_withdrawals} people with fewer in the log",
                acknowledged.withdrawn.values().sum::<u64>()
            ),
        ),
    ])
}

/// The log's positions of `event_types`.
pub async fn positions(pool: &PgPool, event_types: &[&str]) -> Result<HashSet<i64>, sqlx::Error> {
    let types: Vec<String> = event_types.iter().map(|t| (*t).to_owned()).collect();
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT position FROM events WHERE event_type = ANY($1)")
            .bind(types)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect(),
    )
}

/// Whether each key's cursors, repeats dropped, only rise; how many
/// repeats there were.
fn in_order_per_key<'a>(received: impl IntoIterator<Item = (&'a str, Cursor)>) -> (bool, usize) {
    let mut last: HashMap<&str, Cursor> = HashMap::new();
    let mut seen = HashSet::new();
    let (mut ordered, mut repeats) = (true, 0);
    for (key, at) in received {
        if !seen.insert(at) {
            repeats += 1;
            continue;
        }
        if last.get(key).is_some_and(|before| *before > at) {
            ordered = false;
        }
        last.insert(key, at);
    }
    (ordered, repeats)
}

fn coverage(
    name: &str,
    expected: &HashSet<i64>,
    got: &HashSet<i64>,
    ordered: bool,
    repeats: usize,
) -> Check {
    let absent = expected.difference(got).count();
    let extra = got.difference(expected).count();
    check(
        name,
        absent == 0 && extra == 0 && ordered,
        format!(
            "{} of {} revocations, {extra} not in the log, in order: {ordered}, {repeats} repeats",
            expected.len() - absent,
            expected.len()
        ),
    )
}

pub fn receivers(
    revocations: &HashSet<i64>,
    signals: &HashSet<i64>,
    topic: &[Received],
    feed: &[Cursor],
    batches: &[Vec<Cursor>],
) -> Vec<Check> {
    let positions = |cursors: &mut dyn Iterator<Item = &Cursor>| -> HashSet<i64> {
        cursors.map(|c| c.position).collect()
    };
    let (topic_ordered, topic_repeats) =
        in_order_per_key(topic.iter().map(|r| (r.key.as_str(), r.cursor)));
    let (feed_ordered, feed_repeats) = in_order_per_key(feed.iter().map(|at| ("feed", *at)));
    let (ssf_ordered, ssf_repeats) =
        in_order_per_key(batches.iter().flatten().map(|at| ("stream", *at)));
    vec![
        coverage(
            "every revocation on the topic, in order per key",
            revocations,
            &positions(&mut topic.iter().map(|r| &r.cursor)),
            topic_ordered,
            topic_repeats,
        ),
        coverage(
            "every revocation on the feed, in log order",
            revocations,
            &positions(&mut feed.iter()),
            feed_ordered && feed_repeats == 0,
            feed_repeats,
        ),
        coverage(
            "every grant revocation to the Shared Signals poller, in log order",
            signals,
            &positions(&mut batches.iter().flatten()),
            ssf_ordered,
            ssf_repeats,
        ),
    ]
}

/// The highest resident memory per process after `warm_up`.
pub fn memory(samples: &[Sample], warm_up: Duration, bound: u64) -> Check {
    let mut peaks: HashMap<&str, u64> = HashMap::new();
    for sample in samples.iter().filter(|s| s.at >= warm_up) {
        for (role, rss) in &sample.rss {
            let peak = peaks.entry(role.as_str()).or_default();
            *peak = (*peak).max(*rss);
        }
    }
    let mut roles: Vec<_> = peaks.into_iter().collect();
    roles.sort();
    let over = roles.iter().filter(|(_, peak)| *peak > bound).count();
    let detail = roles
        .iter()
        .map(|(role, peak)| format!("{role} {} MB", peak / 1_000_000))
        .collect::<Vec<_>>()
        .join(", ");
    check(
        &format!("RSS after warm-up under {} MB", bound / 1_000_000),
        over == 0 && !roles.is_empty(),
        detail,
    )
}

/// Whether a failed flow overlapped no fault's window.
pub fn outside(failure: &Failure, windows: &[Window]) -> bool {
    !windows
        .iter()
        .any(|w| w.overlaps(failure.started, failure.at))
}

/// Whether the run's `index`th second began outside every fault's window:
/// what is counted per second (latencies, flows not started) is split by
/// the second, where a failed flow, which has its own times, is split by
/// [`outside`].
pub fn second_outside(index: usize, windows: &[Window]) -> bool {
    let at = Duration::from_secs(index as u64);
    !windows.iter().any(|w| w.covers(at))
}

/// Failed flows and flows not started, outside every fault's window.
pub fn errors(failures: &[Failure], total: u64, seconds: &[Second], windows: &[Window]) -> Check {
    let failed_outside = failures.iter().filter(|f| outside(f, windows)).count();
    let unstarted_outside: u64 = seconds
        .iter()
        .enumerate()
        .filter(|(index, _)| second_outside(*index, windows))
        .map(|(_, second)| second.not_started)
        .sum();
    let flows: u64 = seconds.iter().map(|s| s.flows_ok + s.flows_failed).sum();
    let kept_all = failures.len() as u64 == total;
    check(
        "no errors outside the fault windows",
        failed_outside == 0 && unstarted_outside == 0 && kept_all,
        format!(
            "{flows} flows, {total} failed ({failed_outside} outside a window), \
             {unstarted_outside} not started outside a window"
        ),
    )
}

/// Whether a failure is Writ being unavailable (refused, shed, cut off)
/// rather than a wrong answer: only the first may happen in a window.
pub fn unavailable(failure: &Failure) -> bool {
    let message = failure.message.as_str();
    message.starts_with("transport:")
        || message.starts_with("starved:")
        || [" 502 ", " 503 ", " 504 "]
            .iter()
            .any(|status| message.contains(status))
}

/// Wrong answers at any time, faults or not: a stale read, a refused
/// valid request, a token that did not rotate.
pub fn wrong_answers(failures: &[Failure]) -> Check {
    let wrong: Vec<&Failure> = failures.iter().filter(|f| !unavailable(f)).collect();
    check(
        "no wrong answers, in or out of a window",
        wrong.is_empty(),
        wrong
            .first()
            .map(|f| {
                format!(
                    "{} in all; first at {:?}: {}: {}",
                    wrong.len(),
                    f.at,
                    f.flow,
                    f.message
                )
            })
            .unwrap_or_else(|| "only refusals (503) and broken connections".to_owned()),
    )
}
