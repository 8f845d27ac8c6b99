//! `GET /revocations`: revocation messages as server-sent events, for
//! deployments without Kafka (the embedded default) or resource servers
//! that would rather not run a Kafka consumer. Each event's id is its
//! cursor, so a client resumes with `Last-Event-ID` (or `?after=`). Once
//! the stream has sent everything committed when it was opened it sends one
//! `caught_up` event (its data the cursor it reached), so a resource server
//! knows when it may serve.
//!
//! Unlike the Kafka topic, which is the operator's and carries every
//! message, the feed is per client:
//!
//! - Only confidential clients whose settings have `revocation_feed`
//!   subscribe; another authenticated client gets 403 `unauthorized_client`
//!   before any event, an unauthenticated one 401 `invalid_client`.
//! - Each client is sent only the messages that concern its own tokens or
//!   tokens whose audience names it, `sub` only where it has a right to
//!   it: `writ_infra::revocations` states the rules.
//! - A stream checks its client whenever it wakes (a batch of revocations,
//!   or `revocation_feed_recheck` of quiet) and ends once the client is
//!   disabled, gone, or no longer has `revocation_feed`.
//! - At most `revocation_feed_streams` streams per client and process; one
//!   more gets 429 `invalid_request` with `Retry-After`. Not `slow_down`,
//!   which the throttle uses for failed authentications: waiting does not
//!   free a place, closing a stream does.
//!
//! A stream reads its backlog from the log itself, then follows the one
//! shared reader of [`hub`], dropping what it already sent by cursor.

mod hub;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use writ_edge::{HeaderAuthenticatedClient, OAuthError, Query};
use writ_infra::revocations::{self, Routed};
use writ_store::views::clients;
use writ_store::Store;
use writ_store::{Cursor, START};

use hub::{Batch, Slot, PAGE};
pub use hub::{FeedLimits, RevocationFeed};

use writ_edge::openapi::{tag, ErrorBody};

use crate::QueryState;

/// The `Retry-After` of a refused stream: long enough for a reconnecting
/// client not to hammer, short enough to take a place freed by a dropped
/// connection soon.
const RETRY_AFTER_SECS: u64 = 10;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct After {
    /// Resume after this cursor, as `Last-Event-ID` does.
    after: Option<String>,
}

/// Revocation messages as server-sent events, for clients with
/// `revocation_feed`: each event's id is its cursor; a `caught_up` event
/// marks the end of the backlog.
#[utoipa::path(
    get,
    path = "/revocations",
    tag = tag::OAUTH,
    params(After, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this cursor.")),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "An event stream: `revocation` events (the JSON message `writ_protocol` defines), then `caught_up`.", content_type = "text/event-stream"),
        (status = 400, description = "`invalid_request`: the cursor is malformed or repeated.", body = ErrorBody),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate`.", body = ErrorBody),
        (status = 403, description = "`unauthorized_client`: the client lacks `revocation_feed`.", body = ErrorBody),
        (status = 429, description = "`invalid_request`: the client has all its streams open; `Retry-After`.", body = ErrorBody),
    )
)]
pub async fn revocations(
    State(state): State<QueryState>,
    HeaderAuthenticatedClient { client, .. }: HeaderAuthenticatedClient,
    headers: HeaderMap,
    Query(query): Query<After>,
) -> Response {
    if !client.settings.revocation_feed {
        return OAuthError::new(
            StatusCode::FORBIDDEN,
            writ_edge::ErrorCode::UnauthorizedClient,
            "this client may not subscribe to the revocation feed",
        )
        .into_response();
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or(query.after);
    let from = match resume.as_deref().map(str::parse::<Cursor>) {
        None => START,
        Some(Ok(cursor)) => cursor,
        Some(Err(why)) => return OAuthError::invalid_request(&why).into_response(),
    };
    let Some(slot) = state.feed.admit(&client.client_id) else {
        return OAuthError {
            retry_after_secs: Some(RETRY_AFTER_SECS),
            ..OAuthError::new(
                StatusCode::TOO_MANY_REQUESTS,
                writ_edge::ErrorCode::InvalidRequest,
                "this client has as many revocation streams open as it may",
            )
        }
        .into_response();
    };
    let feed = Feed {
        batches: state.feed.subscribe(),
        hub: state.feed.clone(),
        store: state.store.clone(),
        client_id: client.client_id,
        _slot: slot,
        after: from,
        behind: true,
        caught_up_sent: false,
        pending: VecDeque::new(),
        stopping: state.stopping.clone(),
    };
    Sse::new(follow(feed))
        .keep_alive(KeepAlive::default())
        .into_response()
}

struct Feed {
    store: Store,
    hub: RevocationFeed,
    client_id: String,
    _slot: Slot,
    /// The last cursor this stream has dealt with: sent, or skipped as not
    /// its client's.
    after: Cursor,
    batches: broadcast::Receiver<Arc<Batch>>,
    /// Reading the log itself (the backlog, or a gap in the broadcasts).
    behind: bool,
    caught_up_sent: bool,
    pending: VecDeque<Event>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Feed {
    fn take(&mut self, messages: &[Routed]) {
        for routed in messages {
            if routed.cursor <= self.after {
                continue;
            }
            if let Some(view) = routed.view_for(&self.client_id) {
                let data = serde_json::to_string(&view).unwrap_or_default();
                self.pending.push_back(
                    Event::default()
                        .id(view.cursor)
                        .event("revocation")
                        .data(data),
                );
            }
            self.after = routed.cursor;
        }
    }

    /// One page of the log past `after`; `Ok(false)` at its head.
    async fn read_page(&mut self) -> Result<bool, sqlx::Error> {
        let headers = self.store.headers_after(self.after, PAGE).await?;
        let Some(last) = headers.last().map(|header| header.cursor()) else {
            return Ok(false);
        };
        let messages = revocations::routed_for(&self.store, &headers).await?;
        self.take(&messages);
        self.after = last;
        Ok(true)
    }
}

/// Whether `client_id` is enabled and may still subscribe. A failed look
/// counts as no: the stream ends and the client resumes where it was.
async fn may_subscribe(store: &Store, client_id: &str) -> bool {
    matches!(
        clients::active_settings(store.db(), client_id).await,
        Ok(Some(settings)) if settings.revocation_feed
    )
}

fn follow(feed: Feed) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(feed, |mut feed| async move {
        loop {
            if *feed.stopping.borrow() {
                return None;
            }
            if let Some(event) = feed.pending.pop_front() {
                return Some((Ok(event), feed));
            }
            if feed.behind {
                match feed.read_page().await {
                    Ok(true) => {}
                    Ok(false) => {
                        feed.behind = false;
                        if !feed.caught_up_sent {
                            feed.caught_up_sent = true;
                            feed.pending.push_back(
                                Event::default()
                                    .event("caught_up")
                                    .data(feed.after.to_string()),
                            );
                            feed.hub.start_at(feed.after);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "revocation feed cannot read the log; retrying");
                        tokio::time::sleep(feed.hub.limits().poll).await;
                    }
                }
                continue;
            }
            let woke = tokio::select! {
                batch = feed.batches.recv() => Some(batch),
                _ = tokio::time::sleep(feed.hub.limits().recheck) => None,
                changed = feed.stopping.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    continue;
                }
            };
            if !may_subscribe(&feed.store, &feed.client_id).await {
                return None;
            }
            match woke {
                Some(Ok(batch)) if batch.from > feed.after => feed.behind = true,
                Some(Ok(batch)) => {
                    feed.take(&batch.messages);
                    feed.after = feed.after.max(batch.until);
                }
                Some(Err(RecvError::Lagged(_))) => feed.behind = true,
                Some(Err(RecvError::Closed)) => return None,
                None => {}
            }
        }
    })
}
