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
use writ_infra::crypto::{constant_time_eq, sha256_hex};
use writ_infra::http::OAuthError;

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
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !presented.is_empty()
        && constant_time_eq(
            sha256_hex(presented.as_bytes()).as_bytes(),
            sha256_hex(expected.as_bytes()).as_bytes(),
        )
    {
        return Ok(());
    }
    Err(OAuthError {
        www_authenticate: Some("Bearer realm=\"writ-audit\", error=\"invalid_token\"".into()),
        ..OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the audit API needs the audit token as a bearer token",
        )
    })
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

fn answer(report: Result<Report, sqlx::Error>) -> Response {
    match report {
        Ok(report) => Json(Value::Array(report.objects())).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "an audit query failed");
            OAuthError::unavailable().into_response()
        }
    }
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

/// Runs `query` once the caller is authorised and the parameters parse;
/// every refusal is an RFC 6749-shaped error.
async fn guarded<F, Fut>(state: &QueryState, headers: &HeaderMap, query: F) -> Response
where
    F: FnOnce() -> Result<Fut, OAuthError>,
    Fut: std::future::Future<Output = Response>,
{
    if state.audit_token.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    match authorised(state, headers).and_then(|()| query()) {
        Ok(running) => running.await,
        Err(refused) => refused.into_response(),
    }
}

async fn subject(state: &QueryState, raw: &str) -> Result<String, Response> {
    audit::subject_of(&state.store, &state.key_ring, raw)
        .await
        .map_err(|_| OAuthError::unavailable().into_response())
}

async fn grants(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    guarded(&state, &headers, || {
        let raw = required(&p.subject, "subject")?.to_owned();
        let at = time(p.as_of.as_deref(), "as_of")?.unwrap_or_else(Utc::now);
        let state = state.clone();
        Ok(async move {
            match subject(&state, &raw).await {
                Ok(sub) => answer(audit::grants(&state.store, &sub, p.client.as_deref(), at).await),
                Err(refused) => refused,
            }
        })
    })
    .await
}

async fn consents(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    guarded(&state, &headers, || {
        let raw = required(&p.subject, "subject")?.to_owned();
        let state = state.clone();
        Ok(async move {
            match subject(&state, &raw).await {
                Ok(sub) => answer(audit::consents(&state.store, &sub).await),
                Err(refused) => refused,
            }
        })
    })
    .await
}

async fn history(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    guarded(&state, &headers, || {
        let gid = required(&p.grant, "grant")?.to_owned();
        let store = state.store.clone();
        Ok(async move { answer(audit::history(&store, &gid).await) })
    })
    .await
}

async fn who_can(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    guarded(&state, &headers, || {
        let scope = required(&p.scope, "scope")?.to_owned();
        let at = time(Some(required(&p.at, "at")?), "at")?.unwrap_or_else(Utc::now);
        let store = state.store.clone();
        Ok(async move { answer(audit::who_can(&store, &scope, p.client.as_deref(), at).await) })
    })
    .await
}

async fn export(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    guarded(&state, &headers, || {
        let from = time(Some(required(&p.from, "from")?), "from")?.unwrap_or_else(Utc::now);
        let to = time(Some(required(&p.to, "to")?), "to")?.unwrap_or_else(Utc::now);
        if from >= to {
            return Err(OAuthError::invalid_request("from must be before to"));
        }
        let store = state.store.clone();
        Ok(async move {
            match audit::export(&store, from, to).await {
                Ok(report) => {
                    let lines: String = report
                        .objects()
                        .iter()
                        .map(|object| format!("{object}\n"))
                        .collect();
                    ([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response()
                }
                Err(err) => answer(Err(err)),
            }
        })
    })
    .await
}

async fn verify(State(state): State<QueryState>, headers: HeaderMap) -> Response {
    guarded(&state, &headers, || {
        let state = state.clone();
        Ok(async move {
            let checked = writ_infra::store::seal::verify(&state.store, &state.key_ring).await;
            let key = writ_infra::store::seal::public_key(&state.key_ring).ok();
            match checked {
                Ok(verification) => Json(verification.to_json(key.as_deref())).into_response(),
                Err(err) => {
                    tracing::warn!(error = %err, "verification failed to run");
                    OAuthError::unavailable().into_response()
                }
            }
        })
    })
    .await
}
