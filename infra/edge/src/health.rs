//! `/healthz` (the process is alive) and `/readyz` (it can serve: the store
//! answers). Liveness never depends on the database, so an outage makes
//! instances unready without restarting them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use writ_store::Store;

use crate::openapi::tag;

pub fn router(store: Store) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(alive))
        .routes(routes!(ready))
        .with_state(store)
}

/// Whether the process is alive; never touches the store.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = tag::OPERATIONS,
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object))
)]
async fn alive() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Whether the process can serve: its store answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = tag::OPERATIONS,
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Object),
        (status = 503, description = "`{\"status\": \"unavailable\"}`: the store does not answer.", body = Object),
    )
)]
async fn ready(State(store): State<Store>) -> (StatusCode, Json<Value>) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
        }
    }
}
