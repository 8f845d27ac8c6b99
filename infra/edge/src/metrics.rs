//! `/metrics` on every process: the store's counters, the sources a
//! process adds, and a middleware that times every request. The per-route
//! table takes one short lock per request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use writ_store::metrics::{Histogram, Metrics, Source};

const LATENCY_BUCKETS: usize = 12;
const LATENCY_BOUNDS: [f64; LATENCY_BUCKETS] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Requests by method, route template (never the raw path, so the label
/// set stays small) and status, with latencies.
#[derive(Default)]
pub struct HttpMetrics {
    routes: Mutex<BTreeMap<(String, String, u16), Arc<Histogram<LATENCY_BUCKETS>>>>,
}

impl HttpMetrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let histogram = {
            let Ok(mut routes) = self.routes.lock() else {
                return;
            };
            routes
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default()
                .clone()
        };
        histogram.observe(seconds, &LATENCY_BOUNDS);
    }

    fn render(&self, out: &mut String) {
        let name = "writ_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} requests by method, route and status, with their latency\n# TYPE {name} histogram"
        );
        let Ok(routes) = self.routes.lock() else {
            return;
        };
        for ((method, route, status), histogram) in routes.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            histogram.render(out, name, "", &labels, &LATENCY_BOUNDS);
        }
    }
}

/// Everything one process exposes at `/metrics`.
#[derive(Clone)]
pub struct Registry {
    pub http: Arc<HttpMetrics>,
    store: Arc<Metrics>,
    sources: Vec<Arc<dyn Source>>,
}

impl Registry {
    pub fn new(store: Arc<Metrics>) -> Self {
        Self {
            http: Arc::default(),
            store,
            sources: Vec::new(),
        }
    }

    pub fn with(mut self, source: Arc<dyn Source>) -> Self {
        self.sources.push(source);
        self
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        self.http.render(&mut out);
        self.store.render(&mut out);
        for source in &self.sources {
            source.render(&mut out);
        }
        out
    }

    /// `/metrics`, plus a middleware that times every other request.
    pub fn attach<S: Clone + Send + Sync + 'static>(
        self,
        router: axum::Router<S>,
    ) -> axum::Router<S> {
        let exposition = self.clone();
        router
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let registry = exposition.clone();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4",
                            )],
                            registry.render(),
                        )
                            .into_response()
                    }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(self.http, record))
    }
}

async fn record(State(http): State<Arc<HttpMetrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    http.observe(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_latencies_render_by_method_route_and_status() {
        let http = HttpMetrics::default();
        http.observe("POST", "/token", 200, 0.004);
        let mut out = String::new();
        http.render(&mut out);
        assert!(out.contains(
            "writ_http_request_duration_seconds_bucket{method=\"POST\",route=\"/token\",status=\"200\",le=\"0.005\"} 1"
        ), "{out}");
    }
}
