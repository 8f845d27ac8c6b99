//! Every request body is small and arrives in time. A body declared over
//! [`MAX_BODY_BYTES`] is refused with 413 before a byte of it is read
//! (`form::capped_body`, which every body reader goes through); a body
//! still arriving `body_read_timeout` after the request began makes its
//! reader fail, which the readers answer with 408. Without these a client
//! that announces `Content-Length: 100` and sends nothing holds a
//! connection and a task for as long as it likes.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::OAuthError;

/// Far above any form or JSON document an OAuth request carries; a
/// megabyte parameter is refused at once instead of being parsed (R63).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The error a body gives once its deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body read timeout")]
pub struct BodyTimedOut;

/// Wraps `app` so every request's body has a deadline.
pub fn limit(app: Router, timeout: Duration) -> Router {
    app.layer(axum::middleware::from_fn(move |request, next| {
        limit_request(request, next, timeout)
    }))
}

async fn limit_request(request: Request, next: Next, timeout: Duration) -> Response {
    let deadline = Instant::now() + timeout;
    let request = request.map(|body| {
        Body::new(Deadline {
            inner: body,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        })
    });
    next.run(request).await
}

/// 413 as an RFC 6749 error.
pub fn too_large() -> OAuthError {
    OAuthError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        crate::ErrorCode::InvalidRequest,
        format!("the body exceeds {MAX_BODY_BYTES} bytes"),
    )
}

/// The answer to an oversized body goes out at once; what the client is
/// still sending is read and dropped behind it, within the body's deadline
/// and at most [`MAX_DISCARD_BYTES`]. Closing a socket with unread data
/// resets it, and a client still writing would lose the 413 to the reset.
pub fn discard_in_background(body: Body) {
    discard_stream_in_background(body.into_data_stream());
}

pub fn discard_stream_in_background(mut stream: axum::body::BodyDataStream) {
    use futures::StreamExt;
    tokio::spawn(async move {
        let mut discarded = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            discarded += chunk.len();
            if discarded > MAX_DISCARD_BYTES {
                break;
            }
        }
    });
}

/// Past this much, an oversized body is not even read to be dropped.
pub const MAX_DISCARD_BYTES: usize = 8 * 1024 * 1024;

/// What a reader answers when a body failed: 408 past the deadline, else
/// 400.
pub fn unreadable(error: &axum::Error) -> OAuthError {
    let timed_out = std::error::Error::source(error)
        .is_some_and(|source| source.is::<BodyTimedOut>())
        || error.to_string() == BodyTimedOut.to_string();
    if timed_out {
        OAuthError::new(
            StatusCode::REQUEST_TIMEOUT,
            crate::ErrorCode::InvalidRequest,
            "the request body did not arrive in time",
        )
    } else {
        OAuthError::invalid_request("the body could not be read")
    }
}

struct Deadline {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
