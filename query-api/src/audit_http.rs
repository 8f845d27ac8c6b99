//! The auditor's questions over HTTP (`/audit/…` on the query API), the
//! same answers as `writ audit`, for tools that cannot run the CLI. Behind
//! a bearer token of its own (`audit_token`); without one the routes do
//! not exist. Described by an OpenAPI document at `/audit/openapi.json`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use writ_edge::OAuthError;

use crate::audit::{self, Report};
use crate::QueryState;

const OPENAPI: &str = include_str!("../../docs/audit-openapi.json");

pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/audit/openapi.json", get(openapi))
        .route("/audit/grants", get(grants))
        .route("/audit/consents", get(consents))
        .route("/audit/history", get(history))
        .route("/audit/who-can", get(who_can))
        .route("/audit/export", get(export))
        .route("/audit/verify", get(verify))
        .with_state(state)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

fn authorised(state: &QueryState, headers: &HeaderMap) -> Result<(), OAuthError> {
    let expected = state.audit_token.as_deref().unwrap_or_default();
    if writ_edge::bearer::matches(headers, expected) {
        return Ok(());
    }
    Err(OAuthError::bearer_in(
        "writ-audit",
        StatusCode::UNAUTHORIZED,
        writ_edge::ErrorCode::InvalidToken,
        "the audit API needs the audit token as a bearer token",
    ))
}

fn time(raw: Option<&str>, name: &str) -> Result<Option<DateTime<Utc>>, OAuthError> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|_| OAuthError::invalid_request(format!("{name} must be an RFC 3339 time")))
    })
    .transpose()
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

/// A query's rows as JSON; a store that fails is a 503, logged.
fn rows(report: Result<Report, sqlx::Error>) -> Result<Response, OAuthError> {
    Ok(Json(Value::Array(unavailable_on_error(report)?.objects())).into_response())
}

fn unavailable_on_error<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, OAuthError> {
    result.map_err(|err| {
        tracing::warn!(error = %err, "an audit query failed");
        OAuthError::unavailable()
    })
}

#[derive(Deserialize)]
struct Params {
    subject: Option<String>,
    client: Option<String>,
    as_of: Option<String>,
    grant: Option<String>,
    scope: Option<String>,
    at: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Answers with `answer` once the caller is authorised; the future is not
/// polled before, so nothing is parsed or read for a refused caller. Every
/// refusal is an RFC 6749-shaped error.
async fn respond(
    state: &QueryState,
    headers: &HeaderMap,
    answer: impl std::future::Future<Output = Result<Response, OAuthError>>,
) -> Response {
    if state.audit_token.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    match authorised(state, headers) {
        Ok(()) => answer.await.unwrap_or_else(IntoResponse::into_response),
        Err(refused) => refused.into_response(),
    }
}

async fn subject(state: &QueryState, raw: &str) -> Result<String, OAuthError> {
    unavailable_on_error(audit::subject_of(&state.store, &state.key_ring, raw).await)
}

async fn grants(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    respond(&state, &headers, async {
        let at = time(p.as_of.as_deref(), "as_of")?.unwrap_or_else(Utc::now);
        let sub = subject(&state, required(&p.subject, "subject")?).await?;
        rows(audit::grants(&state.store, &sub, p.client.as_deref(), at).await)
    })
    .await
}

async fn consents(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    respond(&state, &headers, async {
        let sub = subject(&state, required(&p.subject, "subject")?).await?;
        rows(audit::consents(&state.store, &sub).await)
    })
    .await
}

async fn history(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    respond(&state, &headers, async {
        rows(audit::history(&state.store, required(&p.grant, "grant")?).await)
    })
    .await
}

async fn who_can(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    respond(&state, &headers, async {
        let scope = required(&p.scope, "scope")?;
        let at = time(Some(required(&p.at, "at")?), "at")?.unwrap_or_else(Utc::now);
        rows(audit::who_can(&state.store, scope, p.client.as_deref(), at).await)
    })
    .await
}

async fn export(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    respond(&state, &headers, async {
        let from = time(Some(required(&p.from, "from")?), "from")?.unwrap_or_else(Utc::now);
        let to = time(Some(required(&p.to, "to")?), "to")?.unwrap_or_else(Utc::now);
        if from >= to {
            return Err(OAuthError::invalid_request("from must be before to"));
        }
        let report = unavailable_on_error(audit::export(&state.store, from, to).await)?;
        let lines: String = report
            .objects()
            .iter()
            .map(|object| format!("{object}\n"))
            .collect();
        Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response())
    })
    .await
}

async fn verify(State(state): State<QueryState>, headers: HeaderMap) -> Response {
    respond(&state, &headers, async {
        let verification = unavailable_on_error(
            writ_store::seal::verify(&state.store, &state.key_ring.checkpoint.0).await,
        )?;
        let key = writ_store::seal::public_key(&state.key_ring.checkpoint.0).ok();
        Ok(Json(verification.to_json(key.as_deref())).into_response())
    })
    .await
}
