//! Overload: a process serves at most `max_in_flight` requests at once. A
//! request past that waits up to `queue_wait` for a place, then is
//! answered 503 with `Retry-After` at once instead of queueing without
//! bound. Capacity goes to the requests admitted, whose latency stays that
//! of a busy server; the rest learn at once to come back (ADR 0033).
//!
//! Health probes, `/metrics` and the long-lived streams (the revocation
//! feed's server-sent events, a held Shared Signals poll) are not counted:
//! an orchestrator must still see a busy process as alive, and a
//! subscriber that holds a place for minutes would shrink the capacity.
//! Connections are capped by the accept loop.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Router;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use writ_store::metrics::Source;

use crate::OAuthError;

/// What a shed request is told to wait before trying again.
const RETRY_AFTER_SECS: u64 = 1;

/// Paths never shed: probes, metrics and streams that live for minutes.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/revocations")
        || path.starts_with("/ssf/poll/")
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_in_flight: usize,
    pub queue_wait: Duration,
}

/// The admission gate one process's routes share, and its counters.
#[derive(Clone)]
pub struct Admission {
    places: Arc<Semaphore>,
    limits: Limits,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    shed: Counter,
    in_flight: Gauge,
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        let limits = Limits {
            max_in_flight: limits.max_in_flight.max(1),
            ..limits
        };
        Self {
            places: Arc::new(Semaphore::new(limits.max_in_flight)),
            limits,
            counters: Arc::default(),
        }
    }

    /// `app` behind the gate.
    pub fn guard(&self, app: Router) -> Router {
        app.layer(axum::middleware::from_fn_with_state(self.clone(), admit))
    }

    /// The gate's counters for `/metrics`.
    pub fn metrics(&self) -> Arc<dyn Source> {
        Arc::new(AdmissionMetrics(self.counters.clone()))
    }
}

struct AdmissionMetrics(Arc<Counters>);

impl Source for AdmissionMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "writ_http_requests_shed",
            "requests answered 503 at once because the process was at max_in_flight for queue_wait",
            self.0.shed.clone(),
        );
        registry.register(
            "writ_http_requests_in_flight",
            "requests being served now, of max_in_flight",
            self.0.in_flight.clone(),
        );
    }
}

async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    if exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let place = match admission.places.clone().try_acquire_owned() {
        Ok(place) => Some(place),
        Err(_) => tokio::time::timeout(
            admission.limits.queue_wait,
            admission.places.clone().acquire_owned(),
        )
        .await
        .ok()
        .and_then(Result::ok),
    };
    let Some(place) = place else {
        admission.counters.shed.inc();
        return busy(&request);
    };
    let _serving = Serving::new(place, admission.counters.clone());
    next.run(request).await
}

/// A place held while a request is served; given back however the
/// request ends (answered, or dropped when its client went away).
struct Serving {
    _place: OwnedSemaphorePermit,
    counters: Arc<Counters>,
}

impl Serving {
    fn new(place: OwnedSemaphorePermit, counters: Arc<Counters>) -> Self {
        counters.in_flight.inc();
        Self {
            _place: place,
            counters,
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.counters.in_flight.dec();
    }
}

/// 503 with `Retry-After`: RFC 6749's JSON for clients, a page for a
/// browser.
fn busy(request: &Request) -> Response {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !wants_html {
        return OAuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::ErrorCode::TemporarilyUnavailable,
            "the server is at capacity; nothing was done, try again shortly",
        )
        .retry_after(RETRY_AFTER_SECS)
        .into_response();
    }
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Busy</title></head>\
             <body><h1>Writ is busy</h1><p>Nothing was done. Please try again in a moment.</p></body></html>",
        ),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    crate::no_store(&mut response);
    response
}
