//! RFC 8936 polling: a poll stream's receiver acknowledges what it got
//! (`ack`, `setErrs`) and asks for more. Unacknowledged SETs come back,
//! identical, on the next poll, also after a restart: they are made from
//! the log again. A poll without SETs to return waits for one (long
//! polling) unless `returnImmediately`, answering as soon as one commits.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use writ_domain::ssf_stream::{SetError, SsfStream, SsfStreamCommand, StreamStatus};
use writ_edge::openapi::tag;
use writ_infra::ssf::{self, Signal};
use writ_store::Cursor;

use super::streams::body;
use super::{refused, run, stream_of, unavailable, Caller, Refusal};
use crate::CommandState;

/// At most this many SETs per answer, whatever `maxEvents` asks.
const MOST_EVENTS: usize = 1_000;
const DEFAULT_EVENTS: usize = 100;
/// Source events read per page while looking for a stream's SETs, and
/// pages per look: a stream that filters out most events still answers.
const PAGE: i64 = 1_000;
const PAGES: usize = 20;
/// How often a held poll looks at the log again.
const LOOK_EVERY: Duration = Duration::from_millis(100);
const LOOK_GAP: Duration = Duration::from_millis(5);

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PollIn {
    max_events: Option<usize>,
    #[serde(default)]
    return_immediately: bool,
    #[serde(default)]
    ack: Vec<String>,
    #[serde(default)]
    set_errs: Map<String, Value>,
}

/// Poll a stream (RFC 8936 §2.4).
#[utoipa::path(post, path = "/ssf/poll/{stream_id}", tag = tag::OAUTH,
    security(("access_token" = [])),
    params(("stream_id" = String, Path, description = "The poll stream.")),
    responses((status = 200, description = "`sets` (jti to SET) and `moreAvailable`."),
        (status = 400, description = "A malformed body, or a push stream."),
        (status = 404, description = "No such stream of this receiver.")))]
pub async fn poll(
    State(state): State<CommandState>,
    Path(stream_id): Path<String>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    let receiver = caller.id.clone();
    let asked: PollIn = if bytes.is_empty() {
        PollIn::default()
    } else {
        body(&bytes)?
    };
    let mut stream = stream_of(&state, &receiver, &stream_id).await?;
    if !stream.is_poll() {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "this stream delivers by push",
        )
        .into());
    }
    if asked.ack.len() + asked.set_errs.len() > MOST_EVENTS {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "at most 1000 SETs are acknowledged at once",
        )
        .into());
    }
    let errors: Vec<SetError> = asked
        .set_errs
        .iter()
        .map(|(jti, err)| SetError {
            jti: jti.clone(),
            err: err
                .get("err")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(64)
                .collect(),
            description: err
                .get("description")
                .and_then(Value::as_str)
                .map(|d| d.chars().take(256).collect()),
        })
        .collect();
    let acked: BTreeSet<Cursor> = asked
        .ack
        .iter()
        .chain(asked.set_errs.keys())
        .filter_map(|jti| ssf::position_of(&stream_id, jti))
        // Only what was handed over can be acknowledged: a made-up
        // position would otherwise be kept for ever.
        .filter(|position| position.to_string() <= stream.delivered_up_to)
        .collect();
    if !acked.is_empty() {
        let floor = floor_after(&state, &stream_id, &stream, &acked).await?;
        let command = SsfStreamCommand::Acknowledge {
            receiver: receiver.clone(),
            positions: acked.iter().map(Cursor::to_string).collect(),
            errors: errors
                .into_iter()
                .filter(|e| ssf::position_of(&stream_id, &e.jti).is_some())
                .collect(),
            floor: floor.to_string(),
        };
        stream = run(&state, &caller, &stream_id, command).await?;
    }
    let most = asked.max_events.unwrap_or(DEFAULT_EVENTS).min(MOST_EVENTS);
    if most == 0 || stream.status != StreamStatus::Enabled {
        return Ok(answer(Map::new(), false));
    }
    let deadline = tokio::time::Instant::now() + state.ssf_long_poll;
    let mut from: Cursor = stream.acked_floor.parse().unwrap_or_default();
    let mut commits = state.store.commits_of(ssf::SOURCES);
    let mut stopping = state.stopping.clone();
    let scan = loop {
        let scan = unacknowledged(&state, &stream_id, &stream, from, most).await?;
        // A held poll ends at shutdown, as if its wait were over, so that
        // it does not hold the graceful shutdown open.
        if !scan.due.is_empty()
            || scan.more
            || asked.return_immediately
            || tokio::time::Instant::now() >= deadline
            || *stopping.borrow()
        {
            break scan;
        }
        // A held poll goes on from where this look found nothing, when
        // this process commits or, for another process's commits, after
        // a while.
        from = scan.clear_to;
        let looked = tokio::time::Instant::now();
        tokio::select! {
            // Without a committer (it stopped) only the interval is left.
            Ok(()) = commits.changed() => {}
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            Ok(_) = stopping.wait_for(|stopping| *stopping) => {}
        }
        // Under a busy log, at most one look per `LOOK_GAP`.
        tokio::time::sleep_until(looked + LOOK_GAP).await;
    };
    let clear_to = if scan.due.is_empty() {
        from.max(scan.clear_to)
    } else {
        scan.clear_to
    };
    // A long stretch of the log with nothing for this stream moves its
    // floor, so no later poll reads that stretch again; a short one is
    // read again, rather than recorded on every poll.
    // Judged with the stream as the poll began: a subject added back or an
    // event type added while it was held would make the stretch not
    // empty after all, so the floor moves only if neither changed.
    let unchanged = || async {
        stream_of(&state, &receiver, &stream_id)
            .await
            .is_ok_and(|now| now.config == stream.config && now.excluded == stream.excluded)
    };
    if stream
        .acked_floor
        .parse::<Cursor>()
        .is_ok_and(|floor| far_ahead(floor, clear_to))
        && unchanged().await
    {
        let command = SsfStreamCommand::Acknowledge {
            receiver: receiver.clone(),
            positions: Vec::new(),
            errors: Vec::new(),
            floor: clear_to.to_string(),
        };
        if let Err(err) = state
            .executor
            .execute::<SsfStream>(&stream_id, command, &caller.metadata)
            .await
        {
            tracing::warn!(error = %err, "a Shared Signals stream's floor was not moved");
        }
    }
    let (due, more) = (scan.due, scan.more);
    let mut sets = Map::new();
    for signal in &due {
        let set = signal
            .sign(&state.keys, &state.issuer, &stream_id, &receiver)
            .ok_or_else(|| unavailable("no RS256 key is active"))?;
        sets.insert(ssf::jti(&stream_id, signal.position), Value::String(set));
    }
    if let Some(last) = due.last() {
        if last.position.to_string() > stream.delivered_up_to {
            let command = SsfStreamCommand::RecordDelivered {
                up_to: last.position.to_string(),
                count: due.len() as u32,
            };
            // The SETs go out whether or not this is recorded: a poller
            // that gets them again acknowledges them again.
            if let Err(err) = state
                .executor
                .execute::<SsfStream>(&stream_id, command, &caller.metadata)
                .await
            {
                tracing::warn!(error = %err, "a Shared Signals poll was not recorded");
            }
        }
    }
    Ok(answer(sets, more))
}

fn answer(sets: Map<String, Value>, more: bool) -> Response {
    let mut response = (
        StatusCode::OK,
        Json(json!({"sets": sets, "moreAvailable": more})),
    )
        .into_response();
    writ_edge::no_store(&mut response);
    response
}

/// What one look at the log found for a stream.
struct Scan {
    /// Unacknowledged SETs, in log order, at most the number asked for.
    due: Vec<Signal>,
    /// There are more than `due`, or the look stopped before the head.
    more: bool,
    /// Nothing between the look's start and here is due.
    clear_to: Cursor,
}

/// Whether `to` is at least a page of the log past `floor`, counting
/// events on SQLite (positions are dense) and transactions' events on
/// PostgreSQL (by position, which grows across transactions).
fn far_ahead(floor: Cursor, to: Cursor) -> bool {
    to.position.saturating_sub(floor.position) >= PAGE
}

/// The stream's SETs after `from` that are not yet acknowledged.
async fn unacknowledged(
    state: &CommandState,
    stream_id: &str,
    stream: &SsfStream,
    from: Cursor,
    most: usize,
) -> Result<Scan, Response> {
    let mut after = from;
    let mut scan = Scan {
        due: Vec::new(),
        more: false,
        clear_to: from,
    };
    for _ in 0..PAGES {
        let (signals, reached) = ssf::signals_after(&state.store, &state.issuer, after, PAGE)
            .await
            .map_err(unavailable)?;
        for signal in signals {
            let due = signal.awaits_ack(stream_id, stream);
            if !due {
                if scan.due.is_empty() {
                    scan.clear_to = signal.position;
                }
                continue;
            }
            if scan.due.len() == most {
                scan.more = true;
                return Ok(scan);
            }
            scan.due.push(signal);
        }
        if scan.due.is_empty() {
            scan.clear_to = reached;
        }
        if reached == after {
            return Ok(scan);
        }
        after = reached;
    }
    scan.more = true;
    Ok(scan)
}

/// How far every SET of the stream is acknowledged once `acked` is: the
/// floor moves over acknowledged SETs (and events not for the stream)
/// up to the first SET still unacknowledged.
async fn floor_after(
    state: &CommandState,
    stream_id: &str,
    stream: &SsfStream,
    acked: &BTreeSet<Cursor>,
) -> Result<Cursor, Refusal> {
    let mut floor: Cursor = stream.acked_floor.parse().unwrap_or_default();
    let Some(&highest) = acked.iter().next_back() else {
        return Ok(floor);
    };
    let mut after = floor;
    for _ in 0..PAGES {
        let (signals, reached) = ssf::signals_after(&state.store, &state.issuer, after, PAGE)
            .await
            .map_err(unavailable)?;
        for signal in signals {
            if signal.position > highest {
                return Ok(floor);
            }
            let done = !signal.awaits_ack(stream_id, stream) || acked.contains(&signal.position);
            if !done {
                return Ok(floor);
            }
            floor = signal.position;
        }
        if reached == after {
            break;
        }
        after = reached;
    }
    Ok(floor)
}
