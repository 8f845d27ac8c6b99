//! `/metrics` on every process, in the OpenMetrics text format through
//! `prometheus-client`: the store's counters, the sources a process adds
//! (the projector's lag, the publisher's progress), and the latency of
//! every request by method, route template (never the raw path, so the
//! label set stays small) and status.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use writ_store::metrics::{Metrics, Source};

const LATENCY_BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BOUNDS)
}

type Latencies = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Everything one process exposes at `/metrics`.
pub struct Registry {
    registry: prometheus_client::registry::Registry,
    latencies: Latencies,
}

impl Registry {
    pub fn new(store: Arc<Metrics>) -> Self {
        let mut registry = prometheus_client::registry::Registry::default();
        let latencies: Latencies = Family::new_with_constructor(latency_histogram);
        registry.register(
            "writ_http_request_duration_seconds",
            "requests by method, route and status, with their latency",
            latencies.clone(),
        );
        store.register(&mut registry);
        Self {
            registry,
            latencies,
        }
    }

    pub fn with(mut self, source: Arc<dyn Source>) -> Self {
        source.register(&mut self.registry);
        self
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The process's whole router: `app`, `/metrics`, `/openapi.json`
    /// describing both, and a middleware that times every request.
    pub fn attach(self, app: OpenApiRouter) -> axum::Router {
        let latencies = self.latencies.clone();
        let exposition = OpenApiRouter::new()
            .routes(routes!(metrics))
            .with_state(Arc::new(self));
        let app = crate::openapi::router().merge(app).merge(exposition);
        crate::openapi::serve_document(app)
            .layer(axum::middleware::from_fn_with_state(latencies, record))
    }
}

/// The process's metrics in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = crate::openapi::tag::OPERATIONS,
    responses((status = 200, description = "OpenMetrics 1.0 text.", content_type = "application/openmetrics-text"))
)]
async fn metrics(State(registry): State<Arc<Registry>>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
        registry.render(),
    )
        .into_response()
}

async fn record(State(latencies): State<Latencies>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    latencies
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_latencies_render_by_method_route_and_status() {
        let registry = Registry::new(Arc::default());
        let labels = RequestLabels {
            method: "POST".into(),
            route: "/token".into(),
            status: 200,
        };
        registry.latencies.get_or_create(&labels).observe(0.004);
        let out = registry.render();
        assert!(out.lines().any(|line| line
            == "writ_http_request_duration_seconds_bucket{le=\"0.005\",method=\"POST\",route=\"/token\",status=\"200\"} 1"
            || line == "writ_http_request_duration_seconds_bucket{method=\"POST\",route=\"/token\",status=\"200\",le=\"0.005\"} 1"), "{out}");
        assert!(out.contains("writ_commit_batches_total 0"), "{out}");
        assert!(out.ends_with("# EOF\n"), "{out}");
    }
}
