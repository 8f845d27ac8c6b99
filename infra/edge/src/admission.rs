//! Overload: a process serves at most `max_in_flight` requests at once. A
//! request past that waits up to `queue_wait` for a place, then is
//! answered 503 with `Retry-After` instead of queueing without bound.
//! While requests are being shed, one that finds no free place is shed at
//! once instead of waiting: a burst is absorbed by the queue, but a
//! sustained overload keeps no standing queue, so what is admitted is
//! served at a busy server's latency and the rest learn at once to come
//! back (ADR 0033, after CoDel's observation that a queue that never
//! drains only adds delay).
//!
//! Health probes, `/metrics` and Shared Signals polls (held open for up to
//! the long-poll wait) are not counted: an orchestrator must still see a
//! busy process as alive, and a receiver holding a place for half a
//! minute would shrink the capacity. Connections are capped by the accept
//! loop. A request's body is read (under the body deadline and size cap)
//! before it takes a place, so a client trickling its body holds a
//! connection, not a place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Router;
use http_body::Body as _;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use writ_store::metrics::Source;

use crate::body::MAX_BODY_BYTES;
use crate::OAuthError;

/// What a shed request is told to wait before trying again.
const RETRY_AFTER_SECS: u64 = 1;
/// How long after a shed a request that finds no free place is shed at
/// once rather than queued: CoDel's interval.
const SHEDDING_WINDOW: Duration = Duration::from_millis(100);

/// Paths never shed: probes, metrics, and a Shared Signals poll, which a
/// receiver may hold open for its long-poll wait. The revocation feed is
/// gated: its handler answers at once and the stream goes on without a
/// place.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics") || path.starts_with("/ssf/poll/")
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
    started: Instant,
    /// When a request was last shed, in milliseconds since `started`
    /// (0: never).
    last_shed_ms: Arc<AtomicU64>,
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
            started: Instant::now(),
            last_shed_ms: Arc::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether a request was shed within the last `SHEDDING_WINDOW` (or
    /// `queue_wait`, if shorter). Each shed renews it, so a sustained
    /// overload stays in it and a quiet moment ends it.
    fn shedding(&self) -> bool {
        let last = self.last_shed_ms.load(Ordering::Relaxed);
        let window = self.limits.queue_wait.min(SHEDDING_WINDOW).as_millis();
        last != 0 && u128::from(self.now_ms().saturating_sub(last)) < window.max(1)
    }

    /// A place, at once or within `queue_wait`; none while shedding.
    async fn place(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(place) = self.places.clone().try_acquire_owned() {
            return Some(place);
        }
        if self.shedding() {
            return None;
        }
        tokio::time::timeout(self.limits.queue_wait, self.places.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
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
    let request = read_body(request).await;
    let Some(place) = admission.place().await else {
        admission
            .last_shed_ms
            .store(admission.now_ms(), Ordering::Relaxed);
        admission.counters.shed.inc();
        return busy(&request);
    };
    let _serving = Serving::new(place, admission.counters.clone());
    next.run(request).await
}

/// The request with its body read into memory first, so that a client
/// trickling its body holds no place. What the body cap or deadline
/// refuses is left for the handler to answer in its own form (JSON, or a
/// page for a browser): a body declared too large is passed on unread,
/// one that grows too large is passed on cut just past the cap, and a
/// read that failed is passed on failing the same way.
async fn read_body(request: Request) -> Request {
    use futures::StreamExt;
    let hint = request.body().size_hint();
    if hint.exact() == Some(0) || hint.lower() > MAX_BODY_BYTES as u64 {
        return request;
    }
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => kept.extend_from_slice(&chunk),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
        if kept.len() > MAX_BODY_BYTES {
            crate::body::discard_stream_in_background(stream);
            break;
        }
    }
    let kept = axum::body::Bytes::from(kept);
    let body = match failure {
        None => Body::from(kept),
        Some(error) => Body::from_stream(futures::stream::iter([Ok(kept), Err(error)])),
    };
    Request::from_parts(parts, body)
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tokio::sync::Notify;
    use tokio::task::JoinHandle;
    use tower::ServiceExt;

    use super::*;

    /// `/hold` answers once `release` is notified; any other path at once.
    fn app(admission: &Admission, release: Arc<Notify>) -> Router {
        admission.guard(Router::new().fallback(move |uri: axum::http::Uri| {
            let release = release.clone();
            async move {
                if uri.path() == "/hold" {
                    release.notified().await;
                }
                "ok"
            }
        }))
    }

    async fn status(app: &Router, path: &str) -> (StatusCode, Option<String>) {
        let request = Request::get(path).body(Body::empty()).unwrap_or_default();
        let response = app
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (response.status(), retry_after)
    }

    fn spawn_get(app: &Router, path: &'static str) -> JoinHandle<(StatusCode, Option<String>)> {
        let app = app.clone();
        tokio::spawn(async move { status(&app, path).await })
    }

    /// A gate of one place, that place held by `/hold` until `release`.
    struct OnePlaceHeld {
        admission: Admission,
        app: Router,
        release: Arc<Notify>,
        held: JoinHandle<(StatusCode, Option<String>)>,
    }

    async fn one_place_held(queue_wait: Duration) -> OnePlaceHeld {
        let admission = Admission::new(Limits {
            max_in_flight: 1,
            queue_wait,
        });
        let release = Arc::new(Notify::new());
        let app = app(&admission, release.clone());
        let held = spawn_get(&app, "/hold");
        while admission.counters.in_flight.get() == 0 {
            tokio::task::yield_now().await;
        }
        OnePlaceHeld {
            admission,
            app,
            release,
            held,
        }
    }

    #[tokio::test]
    async fn past_its_places_a_request_waits_the_queue_wait_then_later_ones_are_shed_at_once() {
        let queue_wait = Duration::from_secs(1);
        let OnePlaceHeld {
            admission,
            app,
            release,
            held,
        } = one_place_held(queue_wait).await;

        let started = Instant::now();
        assert_eq!(
            status(&app, "/").await,
            (StatusCode::SERVICE_UNAVAILABLE, Some("1".into()))
        );
        assert!(started.elapsed() >= queue_wait, "waited the queue wait");
        // Shed without waiting: a wait would take the whole second.
        let started = Instant::now();
        assert_eq!(status(&app, "/").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            started.elapsed() < queue_wait,
            "shed at once while shedding"
        );
        assert_eq!(
            status(&app, "/healthz").await.0,
            StatusCode::OK,
            "probes are never shed"
        );

        release.notify_one();
        assert_eq!(held.await.ok().map(|(s, _)| s), Some(StatusCode::OK));
        assert_eq!(
            status(&app, "/").await.0,
            StatusCode::OK,
            "its place was given back"
        );
        assert_eq!(admission.counters.shed.get(), 2);
        assert_eq!(admission.counters.in_flight.get(), 0);
    }

    #[tokio::test]
    async fn a_waiting_request_gets_a_place_freed_within_the_queue_wait() {
        let OnePlaceHeld {
            admission,
            app,
            release,
            held,
        } = one_place_held(Duration::from_secs(60)).await;
        let waiting = spawn_get(&app, "/");
        // Nothing is answered while the place is held, however long.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        release.notify_one();
        assert_eq!(waiting.await.ok().map(|(s, _)| s), Some(StatusCode::OK));
        assert!(held.await.is_ok());
        assert_eq!(admission.counters.shed.get(), 0);
    }

    #[tokio::test]
    async fn a_request_dropped_by_its_client_gives_its_place_back() {
        let OnePlaceHeld {
            admission,
            app,
            held,
            ..
        } = one_place_held(Duration::from_millis(10)).await;
        held.abort();
        let _ = held.await;
        assert_eq!(admission.counters.in_flight.get(), 0);
        assert_eq!(status(&app, "/").await.0, StatusCode::OK);
    }
}
