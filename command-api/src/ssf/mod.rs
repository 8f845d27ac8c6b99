//! The Shared Signals transmitter's endpoints (OpenID SSF 1.0 §8): stream
//! management for receivers, and RFC 8936 polling. A receiver is a client
//! registered with the `ssf.manage` scope; it calls these with an access
//! token of its own from the client credentials grant carrying that scope.
//! The SETs themselves are made from the log (`writ_infra::ssf`), so what
//! the CLI does while `serve` runs is signalled too.

mod poll;
mod streams;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use writ_domain::ssf_stream::{Delivery, SsfStream, SsfStreamCommand, SsfStreamError};
use writ_edge::{bearer, no_store, ErrorCode, OAuthError};
use writ_infra::ssf;
use writ_infra::tokens::{self, TokenKind};
use writ_store::{ExecuteError, Metadata};

use crate::CommandState;

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(
            streams::create,
            streams::read,
            streams::update,
            streams::replace,
            streams::delete
        ))
        .routes(routes!(streams::status, streams::set_status))
        .routes(routes!(streams::add_subject))
        .routes(routes!(streams::remove_subject))
        .routes(routes!(streams::verify))
        .routes(routes!(poll::poll))
}

/// A refusal, boxed: a `Response` is too large to travel in every
/// `Result` of these handlers.
pub(crate) struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(response: Response) -> Self {
        Self(Box::new(response))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// An SSF error: the status, and RFC 6749-shaped JSON saying why.
pub(crate) fn refused(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    no_store(&mut response);
    response
}

pub(crate) fn not_found() -> Response {
    refused(StatusCode::NOT_FOUND, "not_found", "no such stream")
}

pub(crate) fn unavailable(why: impl std::fmt::Display) -> Response {
    OAuthError::unavailable().because(why).into_response()
}

/// The receiver calling, by its access token (RFC 6750 as the SSF's
/// `urn:ietf:rfc:6749` scheme asks): the bare challenge without a token
/// in the header, `invalid_token` for one that is not an active access token, and 403
/// `insufficient_scope` without `ssf.manage` or for a person's token.
async fn receiver(state: &CommandState, headers: &HeaderMap, uri: &Uri) -> Result<String, Refusal> {
    // RFC 6750 §2.3 is not offered: a token in the query is no token,
    // and gets the bare challenge, like a request without one.
    let in_query = uri.query().is_some_and(|query| {
        form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token")
    });
    if in_query {
        return Err(Refusal::from(bearer::bare_challenge(bearer::REALM)));
    }
    let Some(token) = bearer::from_header(headers).filter(|token| !token.is_empty()) else {
        return Err(Refusal::from(bearer::bare_challenge(bearer::REALM)));
    };
    let now = state.executor.services().now();
    let record = tokens::find(&state.store, &state.keys, token)
        .await
        .map_err(unavailable)?
        .filter(|record| record.kind == TokenKind::Access && record.is_active(now))
        .ok_or_else(|| {
            OAuthError::bearer(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidToken,
                "the access token is invalid, expired or revoked",
            )
            .into_response()
        })?;
    let forbidden = |description: &str| {
        OAuthError::bearer(
            StatusCode::FORBIDDEN,
            ErrorCode::InsufficientScope,
            description,
        )
        .into_response()
    };
    if record.jkt.is_some() {
        return Err(Refusal::from(
            OAuthError::bearer(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidToken,
                "DPoP-bound tokens are not accepted here; use a bearer token",
            )
            .into_response(),
        ));
    }
    if record.sub.is_some() {
        return Err(Refusal::from(forbidden(
            "stream management needs a client credentials token",
        )));
    }
    if !record.scopes.split(' ').any(|scope| scope == ssf::SCOPE) {
        return Err(Refusal::from(forbidden(
            "stream management needs the ssf.manage scope",
        )));
    }
    Ok(record.client_id)
}

/// The receiver's live stream, or the 404 another receiver's gets too.
pub(crate) async fn stream_of(
    state: &CommandState,
    receiver: &str,
    stream_id: &str,
) -> Result<SsfStream, Refusal> {
    let stream = state
        .executor
        .load::<SsfStream>(stream_id)
        .await
        .map_err(unavailable)?;
    if stream.config.is_none() || stream.deleted || stream.receiver != receiver {
        return Err(Refusal::from(not_found()));
    }
    Ok(stream)
}

pub(crate) fn executed<T>(outcome: Result<T, ExecuteError<SsfStreamError>>) -> Result<T, Refusal> {
    outcome.map_err(|err| -> Refusal {
        match err {
            ExecuteError::Rejected(SsfStreamError::NotFound) => not_found(),
            ExecuteError::Rejected(why) => {
                refused(StatusCode::BAD_REQUEST, "invalid_request", &why.to_string())
            }
            other => unavailable(other),
        }
        .into()
    })
}

/// The receiver calling, authenticated, and what its commands record.
pub(crate) struct Caller {
    pub id: String,
    pub metadata: Metadata,
}

impl FromRequestParts<CommandState> for Caller {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &CommandState,
    ) -> Result<Self, Self::Rejection> {
        let id = receiver(state, &parts.headers, &parts.uri).await?;
        let metadata = Metadata::client(&id, &crate::metadata::request_id(&parts.headers), None);
        Ok(Self { id, metadata })
    }
}

/// Runs a receiver's command on its stream: the stream as it stands after.
pub(crate) async fn run(
    state: &CommandState,
    caller: &Caller,
    stream_id: &str,
    command: SsfStreamCommand,
) -> Result<SsfStream, Refusal> {
    let committed = executed(
        state
            .executor
            .execute::<SsfStream>(stream_id, command, &caller.metadata)
            .await,
    )?;
    Ok(committed.state)
}

/// Where a poll stream's receiver polls.
pub(crate) fn poll_url(state: &CommandState, stream_id: &str) -> String {
    format!("{}/ssf/poll/{stream_id}", state.public_url)
}

/// The stream's configuration as SSF §8.1.1 shows it: the receiver's
/// `authorization_header` is its secret and is never shown back.
pub(crate) fn described(state: &CommandState, stream_id: &str, stream: &SsfStream) -> Value {
    let Some(config) = &stream.config else {
        return Value::Null;
    };
    let delivery = match &config.delivery {
        Delivery::Push { endpoint_url, .. } => {
            json!({"method": ssf::PUSH, "endpoint_url": endpoint_url})
        }
        Delivery::Poll => json!({"method": ssf::POLL, "endpoint_url": poll_url(state, stream_id)}),
    };
    let mut body = json!({
        "stream_id": stream_id,
        "iss": state.issuer,
        "aud": stream.receiver,
        "delivery": delivery,
        "events_supported": ssf::EVENTS_SUPPORTED,
        "events_delivered": ssf::events_delivered(config.events_requested.as_deref()),
        "min_verification_interval": 0,
    });
    if let Some(requested) = &config.events_requested {
        body["events_requested"] = json!(requested);
    }
    if let Some(description) = &config.description {
        body["description"] = json!(description);
    }
    body
}
