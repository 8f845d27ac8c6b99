//! The auditor's questions over HTTP (`/audit/…` on the query API), the
//! same answers as `writ audit`, for tools that cannot run the CLI. Behind
//! a bearer token of its own (`audit_token`); without one the routes
//! answer 404. Described by an OpenAPI document at `/audit/openapi.json`.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use writ_edge::openapi::{tag, ErrorBody};
use writ_edge::{OAuthError, Query};

use crate::audit::{self, Report};
use crate::QueryState;
use described::{ConsentEvent, Grant, Holder, LineageEvent, Refusals, Verification};

mod described;

pub fn router(state: QueryState) -> OpenApiRouter {
    routes().routes(routes!(openapi)).with_state(state)
}

fn routes() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(grants))
        .routes(routes!(consents))
        .routes(routes!(history))
        .routes(routes!(who_can))
        .routes(routes!(export))
        .routes(routes!(notifications))
        .routes(routes!(verify))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Writ audit API",
        description = "The auditor's questions, answered from Writ's event log: the same answers as `writ audit`. Every route but this document needs the server's audit token (`audit_token`) as a bearer token; without one configured the routes answer 404. Times are RFC 3339. \"At a moment\" means the events committed by then, with expiry judged by the events' own times."
    ),
    components(schemas(ErrorBody))
)]
struct AuditApi;

/// The audit routes' own OpenAPI document: the part of `/openapi.json`
/// an auditor's tools need.
#[utoipa::path(
    get,
    path = "/audit/openapi.json",
    tag = tag::AUDIT,
    responses((status = 200, description = "OpenAPI 3.1.", content_type = "application/json"))
)]
async fn openapi() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        let mut document = AuditApi::openapi();
        document.merge(writ_edge::openapi::router::<()>().into_openapi());
        document.merge(routes().into_openapi());
        document
            .paths
            .paths
            .retain(|path, _| path.starts_with("/audit/"));
        document.to_pretty_json().unwrap_or_default()
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.as_str(),
    )
        .into_response()
}

const AUDIT_REALM: &str = "writ-audit";

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
    position: Option<String>,
    receiver: Option<String>,
}

/// Answers with `answer` once the caller is authorised; the future is not
/// polled before, so nothing is parsed or read for a refused caller. Every
/// refusal is an RFC 6749-shaped error.
async fn respond(
    state: &QueryState,
    headers: &HeaderMap,
    answer: impl std::future::Future<Output = Result<Response, OAuthError>>,
) -> Response {
    let Some(expected) = &state.audit_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let description = "the audit API needs the audit token as a bearer token";
    match writ_edge::bearer::refusal(headers, expected, AUDIT_REALM, description) {
        None => answer.await.unwrap_or_else(IntoResponse::into_response),
        Some(refused) => refused,
    }
}

async fn subject(state: &QueryState, raw: &str) -> Result<String, OAuthError> {
    unavailable_on_error(audit::subject_of(&state.store, &state.key_ring, raw).await)
}

/// The grants a subject held, as they stood at a moment.
#[utoipa::path(
    get,
    path = "/audit/grants",
    tag = tag::AUDIT,
    security(("audit_token" = [])),
    params(
        ("subject" = String, Query, description = "A `sub`, or a username."),
        ("client" = Option<String>, Query, description = "Only grants of this client."),
        ("as_of" = Option<DateTime<Utc>>, Query, description = "Default now."),
    ),
    responses(
        (status = 200, description = "Oldest first.", body = Vec<Grant>),
        Refusals,
    )
)]
async fn grants(
    State(state): State<QueryState>,
    headers: HeaderMap,
    query: Result<Query<Params>, OAuthError>,
) -> Response {
    respond(&state, &headers, async {
        // Read only once the caller is authorised.
        let Query(p) = query?;
        let at = time(p.as_of.as_deref(), "as_of")?.unwrap_or_else(Utc::now);
        let sub = subject(&state, required(&p.subject, "subject")?).await?;
        rows(audit::grants(&state.store, &sub, p.client.as_deref(), at).await)
    })
    .await
}

/// A subject's whole consent history, in log order.
#[utoipa::path(
    get,
    path = "/audit/consents",
    tag = tag::AUDIT,
    security(("audit_token" = [])),
    params(("subject" = String, Query, description = "A `sub`, or a username.")),
    responses(
        (status = 200, description = "Every consent event.", body = Vec<ConsentEvent>),
        Refusals,
    )
)]
async fn consents(
    State(state): State<QueryState>,
    headers: HeaderMap,
    query: Result<Query<Params>, OAuthError>,
) -> Response {
    respond(&state, &headers, async {
        // Read only once the caller is authorised.
        let Query(p) = query?;
        let sub = subject(&state, required(&p.subject, "subject")?).await?;
        rows(audit::consents(&state.store, &sub).await)
    })
    .await
}

/// One grant's lineage: its events, its session's and its consent's, in
/// log order.
#[utoipa::path(
    get,
    path = "/audit/history",
    tag = tag::AUDIT,
    security(("audit_token" = [])),
    params(("grant" = String, Query, description = "The grant's id (`gid`).")),
    responses(
        (status = 200, description = "Empty for an unknown grant.", body = Vec<LineageEvent>),
        Refusals,
    )
)]
async fn history(
    State(state): State<QueryState>,
    headers: HeaderMap,
    query: Result<Query<Params>, OAuthError>,
) -> Response {
    respond(&state, &headers, async {
        // Read only once the caller is authorised.
        let Query(p) = query?;
        rows(audit::history(&state.store, required(&p.grant, "grant")?).await)
    })
    .await
}

/// The subjects and clients holding an active grant with a scope at a
/// moment.
#[utoipa::path(
    get,
    path = "/audit/who-can",
    tag = tag::AUDIT,
    security(("audit_token" = [])),
    params(
        ("scope" = String, Query),
        ("client" = Option<String>, Query, description = "Only grants of this client."),
        ("at" = DateTime<Utc>, Query),
    ),
    responses(
        (status = 200, description = "The holders.", body = Vec<Holder>),
        Refusals,
    )
)]
async fn who_can(
    State(state): State<QueryState>,
    headers: HeaderMap,
    query: Result<Query<Params>, OAuthError>,
) -> Response {
    respond(&state, &headers, async {
        // Read only once the caller is authorised.
        let Query(p) = query?;
        let scope = required(&p.scope, "scope")?;
        let at = time(Some(required(&p.at, "at")?), "at")?.unwrap_or_else(Utc::now);
        rows(audit::who_can(&state.store, scope, p.client.as_deref(), at).await)
    })
    .await
}

/// The audit index between two times, one JSON object per line, for a
/// SIEM.
#[utoipa::path(
    get,
    path = "/audit/export",
    tag = tag::AUDIT,
    security(("audit_token" = [])),
    params(
        ("from" = DateTime<Utc>, Query, description = "Inclusive."),
        ("to" = DateTime<Utc>, Query, description = "Exclusive."),
    ),
    responses(
        (status = 200, description = "`cursor`, `recorded_at`, `aggregate_type`, `aggregate_id`, `event_type`, `actor`, `client_id`, `subject` per line, in log order.", content_type = "application/x-ndjson"),
        Refusals,
    )
)]
async fn export(
    State(state): State<QueryState>,
    headers: HeaderMap,
    query: Result<Query<Params>, OAuthError>,
) -> Response {
    respond(&state, &headers, async {
        // Read only once the caller is authorised.
        let Query(p) = query?;
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

/// Shared Signals, proof of notification: which receivers were told of a
/// grant's revocation (or of the signal at a log position), when, and
/// when each acknowledged; or, with `receiver`, what it was told between
/// two times.
#[utoipa::path(
    get,
    path = "/audit/notifications",
    tag = tag::AUDIT,
    security(("audit_token" = [])),
    params(
        ("grant" = Option<String>, Query, description = "A grant's id: its revocation."),
        ("position" = Option<String>, Query, description = "A log cursor: the signal there."),
        ("receiver" = Option<String>, Query, description = "A receiver's client id, with `from` and `to`."),
        ("from" = Option<DateTime<Utc>>, Query, description = "Inclusive."),
        ("to" = Option<DateTime<Utc>>, Query, description = "Exclusive."),
    ),
    responses(
        (status = 200, description = "With `grant` or `position`: `position`, `event`, `stream_id`, `receiver`, `method`, `jti`, `told_at`, `acknowledged_at`, `outcome` per receiver. With `receiver`: `told_at`, `stream_id`, `method`, `position`, `event`, `subject`, `jti` per SET.", body = Vec<Object>),
        Refusals,
    )
)]
async fn notifications(
    State(state): State<QueryState>,
    headers: HeaderMap,
    query: Result<Query<Params>, OAuthError>,
) -> Response {
    respond(&state, &headers, async {
        // Read only once the caller is authorised.
        let Query(p) = query?;
        if let Some(receiver) = p.receiver.as_deref().filter(|r| !r.is_empty()) {
            let from = time(Some(required(&p.from, "from")?), "from")?.unwrap_or_else(Utc::now);
            let to = time(Some(required(&p.to, "to")?), "to")?.unwrap_or_else(Utc::now);
            if from >= to {
                return Err(OAuthError::invalid_request("from must be before to"));
            }
            return rows(audit::notifications_to(&state.store, receiver, from, to).await);
        }
        let position = p
            .position
            .as_deref()
            .map(|raw| {
                raw.parse()
                    .map_err(|why: String| OAuthError::invalid_request(why))
            })
            .transpose()?;
        if p.grant.is_none() && position.is_none() {
            return Err(OAuthError::invalid_request(
                "one of grant, position or receiver is required",
            ));
        }
        rows(audit::notifications_of(&state.store, p.grant.as_deref(), position).await)
    })
    .await
}

/// Every stream's hash chain and every signed checkpoint, checked.
#[utoipa::path(
    get,
    path = "/audit/verify",
    tag = tag::AUDIT,
    security(("audit_token" = [])),
    responses(
        (status = 200, description = "`intact` is false on any break.", body = Verification),
        (status = 401, description = "No token: an empty body and a bare `WWW-Authenticate: Bearer` challenge; a wrong one: `invalid_token`.", body = ErrorBody),
        (status = 404, description = "No audit token is configured: the audit API is off."),
        (status = 503, description = "`temporarily_unavailable`.", body = ErrorBody),
    )
)]
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
