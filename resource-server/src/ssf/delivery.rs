//! The two ways SETs reach the receiver: Writ pushes them (RFC 8935), or
//! the receiver polls for them (RFC 8936).

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{SsfClient, SsfReceiver};

/// SETs asked for per poll.
const MAX_EVENTS: u32 = 100;
/// Polls a SET that cannot be verified yet is left unacknowledged for
/// (Writ hands it out again) before it is reported in `setErrs`, which
/// Writ takes as handled.
const VERIFY_ATTEMPTS: u32 = 5;
/// A SET larger than this is refused unread (Writ's are under 2 KiB).
#[cfg(feature = "axum")]
const MAX_SET_BYTES: usize = 64 * 1024;

/// An axum router that answers RFC 8935 pushes at `path`: 202 for a SET
/// that verified and was applied, 400 with `err` and `description` for
/// one that did not, 401 when the request lacks `authorization` (the value
/// the stream was created with).
#[cfg(feature = "axum")]
pub fn push_router(
    path: &str,
    receiver: SsfReceiver,
    authorization: Option<String>,
) -> axum::Router {
    use axum::extract::{DefaultBodyLimit, State};
    use axum::http::{header, HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};

    type Shared = std::sync::Arc<(SsfReceiver, Option<String>)>;

    async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
        let (receiver, authorization) = &*shared;
        if let Some(expected) = authorization {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"err": "authentication_failed", "description": "the Authorization header is not the stream's"})),
                )
                    .into_response();
            }
        }
        let typed = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value.split(';').next().is_some_and(|media| {
                    media
                        .trim()
                        .eq_ignore_ascii_case("application/secevent+jwt")
                })
            });
        if !typed {
            let error = super::SetError::new(
                "invalid_request",
                "the body is not application/secevent+jwt",
            );
            return (StatusCode::BAD_REQUEST, axum::Json(error.to_json())).into_response();
        }
        match receiver.accept(&body).await {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(error) => (StatusCode::BAD_REQUEST, axum::Json(error.to_json())).into_response(),
        }
    }

    axum::Router::new()
        .route(path, axum::routing::post(receive))
        .layer(DefaultBodyLimit::max(MAX_SET_BYTES))
        .with_state(std::sync::Arc::new((receiver, authorization)))
}

#[cfg(feature = "axum")]
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Polls the stream for ever (RFC 8936): first without waiting until it has
/// everything Writ held (then the server is ready, as with the other
/// feeds), then long polls. Each SET is acknowledged in the next poll once
/// applied, or reported in `setErrs` if it did not verify; Writ hands an
/// unacknowledged SET out again, so a crash loses nothing.
pub async fn follow_poll(receiver: SsfReceiver, client: SsfClient, stream_id: String) {
    let url = client.url(&format!("/ssf/poll/{stream_id}"));
    let mut token: Option<String> = None;
    let mut acks: Vec<String> = Vec::new();
    let mut errors = Map::new();
    let mut unverified: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let mut caught_up = false;
    let mut backoff = Duration::from_secs(1);
    let mut fresh_token = false;
    loop {
        let bearer = match &token {
            Some(bearer) => bearer.clone(),
            None => match client.token().await {
                Ok(fresh) => {
                    token = Some(fresh.clone());
                    fresh_token = true;
                    fresh
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot get a token for the Shared Signals stream");
                    backoff = wait(backoff).await;
                    continue;
                }
            },
        };
        let body = json!({
            "maxEvents": MAX_EVENTS,
            "returnImmediately": !caught_up,
            "ack": acks,
            "setErrs": errors,
        });
        let answer = client
            .http
            .post(&url)
            .bearer_auth(&bearer)
            .json(&body)
            .send()
            .await;
        let answer = match answer {
            Ok(answer) if answer.status() == reqwest::StatusCode::UNAUTHORIZED => {
                // A token just minted and refused: the receiver lost its
                // scope or was disabled. Wait before asking for another.
                if fresh_token {
                    tracing::warn!("Writ refuses the receiver's fresh token");
                    backoff = wait(backoff).await;
                }
                token = None;
                continue;
            }
            Ok(answer) => answer.error_for_status(),
            Err(err) => Err(err),
        };
        let polled: Value = match answer {
            Ok(answer) => match answer.json().await {
                Ok(polled) => polled,
                Err(err) => {
                    tracing::warn!(error = %err, "a Shared Signals poll answered nonsense");
                    backoff = wait(backoff).await;
                    continue;
                }
            },
            Err(err) => {
                tracing::warn!(error = %err, "a Shared Signals poll failed");
                backoff = wait(backoff).await;
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        fresh_token = false;
        acks.clear();
        errors.clear();
        let mut retry_later = false;
        for (jti, set) in polled["sets"].as_object().into_iter().flatten() {
            match receiver.accept(set.as_str().unwrap_or_default()).await {
                Ok(()) => {
                    unverified.remove(jti);
                    acks.push(jti.clone());
                }
                Err(error) if error.may_pass_later() => {
                    let attempts = unverified.entry(jti.clone()).or_default();
                    *attempts += 1;
                    if *attempts >= VERIFY_ATTEMPTS {
                        unverified.remove(jti);
                        errors.insert(jti.clone(), error.to_json());
                    } else {
                        retry_later = true;
                    }
                }
                Err(error) => {
                    errors.insert(jti.clone(), error.to_json());
                }
            }
        }
        if retry_later {
            // The JWKS is fetched again at most every few seconds.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if !caught_up && polled["moreAvailable"] != Value::Bool(true) {
            caught_up = true;
            receiver.server.mark_ready();
        }
    }
}

async fn wait(backoff: Duration) -> Duration {
    tokio::time::sleep(backoff).await;
    (backoff * 2).min(Duration::from_secs(30))
}
