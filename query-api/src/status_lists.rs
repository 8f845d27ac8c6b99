//! Token status lists (draft-ietf-oauth-status-list, ADR 0031): each list
//! a JWT access token names, signed as a `statuslist+jwt`. A list exists
//! once its `StatusListOpened` is in the log; its INVALID bits are the
//! rows the projector wrote for revoked tokens. A signed list is kept per
//! list until a revocation adds a row or its `ttl` runs out, so a fetch
//! right after a revocation sees it as soon as the projector has.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use writ_domain::status_list::{StatusList as ListStream, StatusListEvent};
use writ_edge::openapi::tag;
use writ_infra::signing::jwt;
use writ_protocol::status_list::{StatusList, StatusListClaims, INVALID, MEDIA_TYPE, TOKEN_TYPE};
use writ_store::statement::Statement;
use writ_store::RowExt;

use crate::QueryState;

/// How long a list may be cached, and how long its signature holds.
#[derive(Clone)]
pub struct StatusListSettings {
    pub ttl: Duration,
    pub valid_for: Duration,
    /// A list is refused (503) while the projector has left a committed
    /// event unprojected for longer than this: its bits could miss a
    /// revocation that introspection already shows.
    pub stale_after: Duration,
    signed: Arc<Mutex<HashMap<String, Signed>>>,
    opened: Arc<Mutex<HashMap<String, Opened>>>,
    /// One signing at a time: a burst of fetches after a revocation builds
    /// the list once.
    signing: Arc<tokio::sync::Mutex<()>>,
}

impl StatusListSettings {
    pub fn new(ttl: Duration, valid_for: Duration, stale_after: Duration) -> Self {
        Self {
            ttl,
            valid_for: valid_for.max(ttl),
            stale_after,
            signed: Arc::default(),
            opened: Arc::default(),
            signing: Arc::default(),
        }
    }
}

/// What a list's `StatusListOpened` says: never changes.
#[derive(Clone)]
struct Opened {
    size: u32,
    uri: String,
}

#[derive(Clone)]
struct Signed {
    /// How many indices were INVALID when it was signed: rows are only
    /// ever added, so a different count is a different list.
    invalid: i64,
    issued_at: i64,
    token: String,
}

#[utoipa::path(
    get,
    path = "/statuslists/{list}",
    tag = tag::OAUTH,
    params(("list" = String, Path, description = "The list's id, from a token's `status.status_list.uri`.")),
    responses(
        (status = 200, description = "The list as a signed Status List Token (`application/statuslist+jwt`): bit `idx` is 1 once that token is revoked.", content_type = "application/statuslist+jwt", body = String),
        (status = 304, description = "The list is the one the `If-None-Match` names."),
        (status = 404, description = "No such list.", body = Object),
        (status = 406, description = "Only `application/statuslist+jwt` is served.", body = Object),
        (status = 503, description = "The store is unavailable.", body = Object),
    )
)]
pub async fn status_list(
    State(state): State<QueryState>,
    Path(list): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !accepts_jwt(&headers) {
        return refusal(
            StatusCode::NOT_ACCEPTABLE,
            "only application/statuslist+jwt is served",
        );
    }
    let opened = match opened(&state, &list).await {
        Ok(Some(opened)) => opened,
        Ok(None) => return refusal(StatusCode::NOT_FOUND, "no such status list"),
        Err(err) => return unavailable(err),
    };
    let signed = match signed(&state, &list, &opened).await {
        Ok(signed) => signed,
        Err(err) => return unavailable(err),
    };
    // One tag per signed copy: a cache revalidating a copy whose `exp`
    // has passed gets the new one, not a 304.
    let etag = format!("W/\"{list}-{}-{}\"", signed.invalid, signed.issued_at);
    let settings = &state.status_lists;
    // What is left of the copy's `ttl`, so that no cache holds it longer.
    let age = (state.services.now().timestamp() - signed.issued_at).max(0) as u64;
    let max_age = settings.ttl.as_secs().saturating_sub(age);
    let mut response = if names(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut ok = signed.token.into_response();
        ok.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        ok
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, format!("public, max-age={max_age}")),
        (header::ETAG, etag),
        (header::VARY, "Accept".to_owned()),
        // §8.1: browsers' wallets and apps fetch lists too.
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".to_owned()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// RFC 9110 §12.5.1: no `Accept`, or one that admits the JWT form with a
/// non-zero weight.
fn accepts_jwt(headers: &HeaderMap) -> bool {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if values.is_empty() {
        return true;
    }
    values
        .iter()
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let weight_zero = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            !weight_zero && [MEDIA_TYPE, "application/*", "*/*"].contains(&media.as_str())
        })
}

fn names(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag))
}

/// The list's opening in the log; `None` for an id that was never
/// opened. Openings never change, so they are kept.
async fn opened(state: &QueryState, list: &str) -> Result<Option<Opened>, sqlx::Error> {
    let known = state
        .status_lists
        .opened
        .lock()
        .ok()
        .and_then(|opened| opened.get(list).cloned());
    if known.is_some() {
        return Ok(known);
    }
    // Ids are UUIDs in hex; anything else was never opened.
    if list.len() != 32 || !list.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let opened = state
        .store
        .stream(<ListStream as cqrs_es::Aggregate>::TYPE, list)
        .await?
        .into_iter()
        .find_map(|event| match serde_json::from_value(event.payload) {
            Ok(StatusListEvent::StatusListOpened { size, uri, .. }) => Some(Opened { size, uri }),
            Err(_) => None,
        });
    if let (Some(opened), Ok(mut known)) = (&opened, state.status_lists.opened.lock()) {
        known.insert(list.to_owned(), opened.clone());
    }
    Ok(opened)
}

/// Whether the projector has left a committed event behind for longer
/// than [`StatusListSettings::stale_after`].
async fn projector_stalled(state: &QueryState) -> Result<bool, String> {
    let checkpoint = state
        .store
        .db()
        .fetch_optional(&Statement::new(
            "SELECT txid, position FROM projector_checkpoints WHERE projection = 'audit_index'",
        ))
        .await
        .map_err(|e| e.to_string())?
        .map(|row| writ_store::Cursor {
            txid: row.int("txid").unwrap_or(0),
            position: row.int("position").unwrap_or(0),
        })
        .unwrap_or_default();
    let next = state
        .store
        .headers_after(checkpoint, 1)
        .await
        .map_err(|e| e.to_string())?;
    let oldest = next
        .first()
        .and_then(|event| chrono::DateTime::parse_from_rfc3339(&event.recorded_at).ok());
    let stale_after = chrono::Duration::from_std(state.status_lists.stale_after)
        .unwrap_or(chrono::Duration::seconds(30));
    Ok(oldest.is_some_and(|at| state.services.now() - at.to_utc() > stale_after))
}

async fn signed(state: &QueryState, list: &str, opened: &Opened) -> Result<Signed, String> {
    let db = state.store.db();
    let settings = &state.status_lists;
    let count = || async {
        db.scalar_i64(
            &Statement::new("SELECT count(*) FROM status_invalid WHERE list_id = $1").text(list),
        )
        .await
        .map_err(|e| e.to_string())
    };
    let current = |invalid: i64| {
        let now = state.services.now().timestamp();
        settings
            .signed
            .lock()
            .ok()
            .and_then(|signed| signed.get(list).cloned())
            .filter(|kept| {
                kept.invalid == invalid && now - kept.issued_at < settings.ttl.as_secs() as i64
            })
    };
    if let Some(kept) = current(count().await?) {
        return Ok(kept);
    }
    let _one_signing = settings.signing.lock().await;
    let invalid = count().await?;
    if let Some(kept) = current(invalid) {
        return Ok(kept);
    }
    if projector_stalled(state).await? {
        return Err("the projector is behind: the list may miss revocations".into());
    }
    let now = state.services.now().timestamp();
    let rows = db
        .fetch_all(&Statement::new("SELECT idx FROM status_invalid WHERE list_id = $1").text(list))
        .await
        .map_err(|e| e.to_string())?;
    let mut statuses = StatusList::new(1, u64::from(opened.size)).map_err(|e| e.to_string())?;
    for idx in rows.iter().filter_map(|row| row.int("idx")) {
        statuses.set(idx as u64, INVALID);
    }
    let signer = state
        .keys
        .signer(&state.signing_alg)
        .ok_or("no signing key is active")?;
    let claims = StatusListClaims {
        sub: opened.uri.clone(),
        iss: Some(state.issuer.clone()),
        iat: now,
        exp: Some(now + settings.valid_for.as_secs() as i64),
        ttl: Some(settings.ttl.as_secs()),
        status_list: statuses.encode(),
    };
    let token = jwt::encode(&signer, TOKEN_TYPE, &claims).map_err(|e| e.to_string())?;
    let signed = Signed {
        invalid,
        issued_at: now,
        token,
    };
    if let Ok(mut kept) = settings.signed.lock() {
        kept.insert(list.to_owned(), signed.clone());
    }
    Ok(signed)
}

fn refusal(status: StatusCode, description: &str) -> Response {
    let error = match status {
        StatusCode::NOT_FOUND => "not_found",
        _ => "not_acceptable",
    };
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn unavailable(err: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %err, "cannot serve a status list");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "temporarily_unavailable", "error_description": "the store is unavailable; try again"})),
    )
        .into_response()
}
