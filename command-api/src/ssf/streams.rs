//! Stream management (SSF 1.0 §8.1.1–§8.1.4): create, read, update,
//! replace and delete a stream; its status; its subjects; verification.
//! Every change is an event of the stream; none takes effect in a handler
//! alone. Bodies are JSON; anything malformed is a 400 that records
//! nothing.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use writ_domain::ssf_stream::{
    Delivery, SsfStream, SsfStreamCommand, SsfStreamEvent, StreamConfig,
};
use writ_edge::openapi::tag;
use writ_infra::{outbound, ssf};
use writ_store::executor::Stream;
use writ_store::{Cursor, START};
use writ_wire::ssf_stream::{
    self, AskedDelivery, DeliveryIn, StatusIn, StreamId, StreamIn, SubjectIn, VerifyIn,
};
use writ_wire::Invalid;

use super::{described, executed, refused, run, stream_of, unavailable, Caller, Refusal};
use crate::CommandState;

fn invalid(description: &str) -> Refusal {
    refused(StatusCode::BAD_REQUEST, "invalid_request", description).into()
}

/// A body `writ_wire` refused, as the 400 it is.
fn unread(why: Invalid) -> Refusal {
    invalid(&why.description)
}

pub(super) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Refusal> {
    ssf_stream::body(bytes).map_err(unread)
}

/// The delivery asked for, with a push endpoint Writ may call (R57).
fn delivery(
    state: &CommandState,
    stream_id: &str,
    asked: Option<DeliveryIn>,
) -> Result<Delivery, Refusal> {
    match asked.map(DeliveryIn::checked).transpose().map_err(unread)? {
        None | Some(AskedDelivery::Poll) => Ok(Delivery::Poll),
        Some(AskedDelivery::Push {
            endpoint_url,
            authorization_header,
        }) => {
            if outbound::callable(&endpoint_url).is_err() {
                return Err(invalid(ssf_stream::UNCALLABLE_ENDPOINT));
            }
            Ok(Delivery::Push {
                endpoint_url,
                authorization_header: authorization_header
                    .map(|value| ssf::seal_authorization(&state.key_ring, stream_id, &value)),
            })
        }
    }
}

/// Streams one receiver may hold: each costs the pusher a read per turn.
const STREAMS_PER_RECEIVER: usize = 32;
/// Subjects one stream may have removed.
const REMOVED_SUBJECTS: usize = 1_000;

fn bounded(config: StreamConfig) -> Result<StreamConfig, Refusal> {
    ssf_stream::bounded(config).map_err(unread)
}

fn config(state: &CommandState, stream_id: &str, asked: StreamIn) -> Result<StreamConfig, Refusal> {
    bounded(StreamConfig {
        delivery: delivery(state, stream_id, asked.delivery)?,
        events_requested: asked.events_requested,
        description: asked.description,
    })
}

/// The stream ids `receiver` created, live or not, oldest first.
async fn created_by(state: &CommandState, receiver: &str) -> Result<Vec<String>, Refusal> {
    let mut after = START;
    let mut ids = Vec::new();
    loop {
        let (events, reached) = state
            .store
            .events_of_kinds_seen(after, &["SsfStreamCreated"], 1_000)
            .await
            .map_err(unavailable)?;
        for event in &events {
            if let Ok(SsfStreamEvent::SsfStreamCreated {
                receiver: owner, ..
            }) = serde_json::from_value(event.payload.clone())
            {
                if owner == receiver {
                    ids.push(event.aggregate_id.clone());
                }
            }
        }
        if events.len() < 1_000 || reached == after {
            return Ok(ids);
        }
        after = reached;
    }
}

/// The receiver's live streams.
async fn live_streams(
    state: &CommandState,
    receiver: &str,
) -> Result<Vec<(String, SsfStream)>, Refusal> {
    let mut live = Vec::new();
    for id in created_by(state, receiver).await? {
        if let Ok(stream) = stream_of(state, receiver, &id).await {
            live.push((id, stream));
        }
    }
    Ok(live)
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    writ_edge::no_store(&mut response);
    response
}

/// Create a stream (SSF §8.1.1.1).
#[utoipa::path(post, path = "/ssf/streams", tag = tag::OAUTH,
    security(("access_token" = [])),
    responses((status = 201, description = "The new stream's configuration."),
        (status = 400, description = "A malformed body, an unknown delivery method or a push endpoint Writ may not call."),
        (status = 401, description = "No valid access token."),
        (status = 403, description = "The token lacks `ssf.manage`.")))]
pub async fn create(
    State(state): State<CommandState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    let receiver = caller.id.clone();
    let asked: StreamIn = body(&bytes)?;
    if live_streams(&state, &receiver).await?.len() >= STREAMS_PER_RECEIVER {
        return Err(refused(
            StatusCode::CONFLICT,
            "invalid_request",
            "this receiver holds 32 streams already; delete one first",
        )
        .into());
    }
    let stream_id = uuid::Uuid::now_v7().simple().to_string();
    let start_after = match (&asked.start_after, &asked.start_at) {
        (Some(cursor), _) => cursor
            .parse::<Cursor>()
            .map_err(|_| invalid("start_after is not a log cursor"))?,
        (None, Some(at)) => state.store.cursor_before(at).await.map_err(unavailable)?,
        (None, None) => state.store.readable_head().await.map_err(unavailable)?,
    };
    let config = config(&state, &stream_id, asked)?;
    let command = SsfStreamCommand::Create {
        receiver: receiver.clone(),
        config,
        start_after: start_after.max(START).to_string(),
    };
    let stream = executed(
        state
            .executor
            .execute_with::<SsfStream>(
                &stream_id,
                command,
                &caller.metadata,
                Vec::new(),
                Stream::New,
            )
            .await,
    )?
    .state;
    Ok(answer(
        StatusCode::CREATED,
        described(&state, &stream_id, &stream),
    ))
}

/// Read one stream, or list the receiver's (SSF §8.1.1.2).
#[utoipa::path(get, path = "/ssf/streams", tag = tag::OAUTH,
    security(("access_token" = [])),
    params(("stream_id" = Option<String>, Query, description = "One stream; without it, every stream of the receiver.")),
    responses((status = 200, description = "The stream's configuration, or an array of them."),
        (status = 404, description = "No such stream of this receiver.")))]
pub async fn read(
    State(state): State<CommandState>,
    caller: Caller,
    Query(query): Query<StreamId>,
) -> Result<Response, Refusal> {
    let receiver = caller.id.clone();
    if let Some(stream_id) = query.stream_id {
        let stream = stream_of(&state, &receiver, &stream_id).await?;
        return Ok(answer(
            StatusCode::OK,
            described(&state, &stream_id, &stream),
        ));
    }
    let listed = live_streams(&state, &receiver)
        .await?
        .iter()
        .map(|(id, stream)| described(&state, id, stream))
        .collect();
    Ok(answer(StatusCode::OK, Value::Array(listed)))
}

async fn change(
    state: &CommandState,
    caller: &Caller,
    bytes: &Bytes,
    merge: bool,
) -> Result<Response, Refusal> {
    let receiver = caller.id.clone();
    let asked: StreamIn = body(bytes)?;
    let stream_id = asked
        .stream_id
        .clone()
        .ok_or_else(|| invalid("stream_id is required"))?;
    let stream = stream_of(state, &receiver, &stream_id).await?;
    let current = stream.config.clone().unwrap_or(StreamConfig {
        delivery: Delivery::Poll,
        events_requested: None,
        description: None,
    });
    let config = if merge {
        let kept_header = match &current.delivery {
            Delivery::Push {
                authorization_header,
                ..
            } => authorization_header.clone(),
            Delivery::Poll => None,
        };
        let new_header = asked
            .delivery
            .as_ref()
            .is_some_and(|d| d.authorization_header.is_some());
        bounded(StreamConfig {
            delivery: match asked.delivery {
                // A new endpoint without a new `authorization_header`
                // keeps the one the receiver gave before.
                Some(asked) => match delivery(state, &stream_id, Some(asked))? {
                    Delivery::Push {
                        endpoint_url,
                        authorization_header: None,
                    } if !new_header => Delivery::Push {
                        endpoint_url,
                        authorization_header: kept_header,
                    },
                    other => other,
                },
                None => current.delivery.clone(),
            },
            events_requested: asked.events_requested.or(current.events_requested.clone()),
            description: asked.description.or(current.description.clone()),
        })?
    } else {
        config(state, &stream_id, asked)?
    };
    // Push and poll keep different offsets (delivered, acknowledged): a
    // stream that changed method would skip SETs or send them again.
    if std::mem::discriminant(&config.delivery) != std::mem::discriminant(&current.delivery) {
        return Err(invalid(
            "a stream's delivery method cannot change; create a new stream",
        ));
    }
    let command = SsfStreamCommand::Update {
        receiver: receiver.clone(),
        config,
    };
    let stream = run(state, caller, &stream_id, command).await?;
    Ok(answer(
        StatusCode::OK,
        described(state, &stream_id, &stream),
    ))
}

/// Update the fields sent (SSF §8.1.1.3).
#[utoipa::path(patch, path = "/ssf/streams", tag = tag::OAUTH,
    security(("access_token" = [])),
    responses((status = 200, description = "The stream's new configuration."),
        (status = 404, description = "No such stream of this receiver.")))]
pub async fn update(
    State(state): State<CommandState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    change(&state, &caller, &bytes, true).await
}

/// Replace the receiver-supplied fields (SSF §8.1.1.4).
#[utoipa::path(put, path = "/ssf/streams", tag = tag::OAUTH,
    security(("access_token" = [])),
    responses((status = 200, description = "The stream's new configuration."),
        (status = 404, description = "No such stream of this receiver.")))]
pub async fn replace(
    State(state): State<CommandState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    change(&state, &caller, &bytes, false).await
}

/// Delete a stream (SSF §8.1.1.5); nothing more is sent on it.
#[utoipa::path(delete, path = "/ssf/streams", tag = tag::OAUTH,
    security(("access_token" = [])),
    params(("stream_id" = String, Query, description = "The stream.")),
    responses((status = 204, description = "Deleted."),
        (status = 404, description = "No such stream of this receiver.")))]
pub async fn delete(
    State(state): State<CommandState>,
    caller: Caller,
    Query(query): Query<StreamId>,
) -> Result<Response, Refusal> {
    let receiver = caller.id.clone();
    let stream_id = query
        .stream_id
        .ok_or_else(|| invalid("stream_id is required"))?;
    let command = SsfStreamCommand::Delete {
        receiver: receiver.clone(),
    };
    run(&state, &caller, &stream_id, command).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn status_body(stream_id: &str, stream: &SsfStream) -> Value {
    let mut body = json!({"stream_id": stream_id, "status": stream.status.as_str()});
    if let Some(reason) = &stream.reason {
        body["reason"] = json!(reason);
    }
    body
}

/// A stream's status (SSF §8.1.2.1).
#[utoipa::path(get, path = "/ssf/status", tag = tag::OAUTH,
    security(("access_token" = [])),
    params(("stream_id" = String, Query, description = "The stream.")),
    responses((status = 200, description = "`stream_id`, `status` and the `reason` given with it."),
        (status = 404, description = "No such stream of this receiver.")))]
pub async fn status(
    State(state): State<CommandState>,
    caller: Caller,
    Query(query): Query<StreamId>,
) -> Result<Response, Refusal> {
    let receiver = caller.id.clone();
    let stream_id = query
        .stream_id
        .ok_or_else(|| invalid("stream_id is required"))?;
    let stream = stream_of(&state, &receiver, &stream_id).await?;
    Ok(answer(StatusCode::OK, status_body(&stream_id, &stream)))
}

/// Enable, pause or disable a stream (SSF §8.1.2.2): paused holds its
/// events for later; disabled drops them.
#[utoipa::path(post, path = "/ssf/status", tag = tag::OAUTH,
    security(("access_token" = [])),
    responses((status = 200, description = "The stream's new status, with the reason echoed."),
        (status = 400, description = "An unknown status."),
        (status = 404, description = "No such stream of this receiver.")))]
pub async fn set_status(
    State(state): State<CommandState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    let receiver = caller.id.clone();
    let asked: StatusIn = body(&bytes)?;
    let status = asked.checked().map_err(unread)?;
    let head = state.store.readable_head().await.map_err(unavailable)?;
    let command = SsfStreamCommand::SetStatus {
        receiver: receiver.clone(),
        status,
        reason: asked.reason,
        head: head.to_string(),
    };
    let stream = run(&state, &caller, &asked.stream_id, command).await?;
    Ok(answer(
        StatusCode::OK,
        status_body(&asked.stream_id, &stream),
    ))
}

async fn subject(
    state: &CommandState,
    caller: &Caller,
    bytes: &Bytes,
    add: bool,
) -> Result<Response, Refusal> {
    let receiver = caller.id.clone();
    let asked: SubjectIn = body(bytes)?;
    asked.checked().map_err(unread)?;
    let stream = stream_of(state, &receiver, &asked.stream_id).await?;
    if !add && stream.excluded.len() >= REMOVED_SUBJECTS {
        return Err(invalid("this stream has 1000 subjects removed already"));
    }
    let command = if add {
        SsfStreamCommand::AddSubject {
            receiver: receiver.clone(),
            subject: asked.subject,
        }
    } else {
        SsfStreamCommand::RemoveSubject {
            receiver: receiver.clone(),
            subject: asked.subject,
        }
    };
    run(state, caller, &asked.stream_id, command).await?;
    Ok(if add {
        StatusCode::OK.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    })
}

/// Add a subject back (SSF §8.1.3.2). Every subject is included by
/// default (`default_subjects` ALL): this undoes a removal.
#[utoipa::path(post, path = "/ssf/subjects/add", tag = tag::OAUTH,
    security(("access_token" = [])),
    responses((status = 200, description = "Added."),
        (status = 400, description = "No subject identifier."),
        (status = 404, description = "No such stream of this receiver.")))]
pub async fn add_subject(
    State(state): State<CommandState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    subject(&state, &caller, &bytes, true).await
}

/// Remove a subject (SSF §8.1.3.3): no more events about that person.
#[utoipa::path(post, path = "/ssf/subjects/remove", tag = tag::OAUTH,
    security(("access_token" = [])),
    responses((status = 204, description = "Removed."),
        (status = 400, description = "No subject identifier."),
        (status = 404, description = "No such stream of this receiver.")))]
pub async fn remove_subject(
    State(state): State<CommandState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    subject(&state, &caller, &bytes, false).await
}

/// Ask for a verification event (SSF §8.1.4.2), sent on the stream like
/// any other, carrying `state`.
#[utoipa::path(post, path = "/ssf/verify", tag = tag::OAUTH,
    security(("access_token" = [])),
    responses((status = 204, description = "The verification event is on its way."),
        (status = 404, description = "No such stream of this receiver.")))]
pub async fn verify(
    State(state): State<CommandState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    let receiver = caller.id.clone();
    let asked: VerifyIn = body(&bytes)?;
    asked.checked().map_err(unread)?;
    let command = SsfStreamCommand::Verify {
        receiver: receiver.clone(),
        state: asked.state,
    };
    run(&state, &caller, &asked.stream_id, command).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
