//! `GET /revocations`: the revocation messages as server-sent events, for
//! deployments without Kafka (the embedded default) or resource servers
//! that would rather not run a Kafka consumer. The same messages as the
//! Kafka topic, in log order; each event's id is its cursor, so a client
//! resumes with `Last-Event-ID` (or `?after=`). Confidential clients only.
//! Once the stream has sent everything committed when it was opened it
//! sends one `caught_up` event, so a resource server knows when it may
//! serve.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use serde::Deserialize;
use writ_infra::http::{self, form::Form, OAuthError};
use writ_infra::revocations;
use writ_infra::store::{Cursor, START};
use writ_infra::Store;

use crate::QueryState;

/// Events read per look at the log.
const PAGE: i64 = 500;
/// How often an idle stream looks for commits of other processes; commits
/// of this process wake it at once.
const POLL: Duration = Duration::from_millis(50);

#[derive(Deserialize)]
pub struct After {
    after: Option<String>,
}

pub async fn revocations(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(query): Query<After>,
) -> Response {
    let form = Form::default();
    if let Err(err) =
        http::authenticate(&state.store, &state.throttle, &headers, &form, false).await
    {
        return err.into_response();
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
    Sse::new(feed(state.store.clone(), from, state.stopping.clone()))
        .keep_alive(KeepAlive::default())
        .into_response()
}

struct Feed {
    store: Store,
    after: Cursor,
    commits: tokio::sync::watch::Receiver<Cursor>,
    pending: std::collections::VecDeque<Event>,
    caught_up_sent: bool,
    stopping: tokio::sync::watch::Receiver<bool>,
}

fn feed(
    store: Store,
    after: Cursor,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = Feed {
        stopping,
        commits: store.commits(),
        store,
        after,
        pending: Default::default(),
        caught_up_sent: false,
    };
    stream::unfold(state, |mut feed| async move {
        loop {
            if *feed.stopping.borrow() {
                return None;
            }
            if let Some(event) = feed.pending.pop_front() {
                return Some((Ok(event), feed));
            }
            match feed.store.headers_after(feed.after, PAGE).await {
                Ok(headers) if !headers.is_empty() => {
                    let messages = match revocations::messages_for(&feed.store, &headers).await {
                        Ok(messages) => messages,
                        Err(err) => {
                            tracing::warn!(error = %err, "revocation feed cannot read the log; retrying");
                            tokio::time::sleep(POLL).await;
                            continue;
                        }
                    };
                    for message in messages {
                        let data = serde_json::to_string(&message).unwrap_or_default();
                        feed.pending.push_back(
                            Event::default()
                                .id(message.cursor.clone())
                                .event("revocation")
                                .data(data),
                        );
                    }
                    feed.after = headers.last().map(|h| h.cursor()).unwrap_or(feed.after);
                }
                Ok(_) if !feed.caught_up_sent => {
                    feed.caught_up_sent = true;
                    feed.pending.push_back(
                        Event::default()
                            .event("caught_up")
                            .data(feed.after.to_string()),
                    );
                }
                Ok(_) => {
                    tokio::select! {
                        _ = tokio::time::timeout(POLL, feed.commits.changed()) => {}
                        _ = feed.stopping.changed() => {}
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "revocation feed cannot read the log; retrying");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    })
}
