//! The device verification page (RFC 8628 §3.3): the person types the
//! code their device shows, signs in, sees which application asks for
//! what, and allows or denies. Allowing records the consent too, so the
//! account page lists the device's access and can withdraw it.
//!
//! §5.1: every code typed is counted per address (an IPv6 /64) before it
//! is looked up, and refused past `user_code_failure_limit`; a code in the
//! query only fills the field, so another site cannot make a visitor's
//! browser guess for it. §5.4: the page always asks, even when the person
//! consented before, because someone else may have sent them a code of
//! theirs.

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use writ_domain::grant::{Grant, GrantCommand, GrantError, GrantStatus};
use writ_domain::values::{user_code, ScopeSet};
use writ_edge::ClientAddress;
use writ_store::ExecuteError;

use super::described::{DeviceDecisionForm, DeviceForm};
use super::guard::{self, expired};
use super::login::{self, After};
use super::pages::{self, describe_scope};
use super::request::load_client;
use super::session::{self, LiveSession};
use super::state;
use crate::device::grant_of_user_code;
use crate::metadata::{request_id, user_metadata};
use crate::CommandState;

const PURPOSE: &str = "device";
const NO_SUCH_CODE: &str =
    "That code is not valid, or has expired. Check the code on your device, or start again there.";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Typed {
    /// From `verification_uri_complete`, as the device shows it.
    user_code: Option<String>,
}

/// What the confirmation page's form carries back, sealed to the browser.
#[derive(Debug, Serialize, Deserialize)]
struct Shown {
    gid: String,
    user_code: String,
    client_id: String,
    scopes: ScopeSet,
    /// Only the person it was shown to may answer it.
    sub: String,
    shown_at: DateTime<Utc>,
}

/// The page to type a code on, the field filled from `user_code` (from
/// `verification_uri_complete`); nothing is looked up until it is posted.
#[utoipa::path(
    get,
    path = "/device",
    tag = writ_edge::openapi::tag::BROWSER,
    params(Typed),
    responses(
        (status = 200, description = "The code page.", content_type = "text/html"),
    )
)]
pub async fn show(
    State(state): State<CommandState>,
    Query(typed): Query<Typed>,
    headers: HeaderMap,
) -> Response {
    let (binding, new_binding) = state::binding(&headers);
    let typed = typed.user_code.unwrap_or_default();
    let response = entry(&state, &binding, &typed, None, StatusCode::OK);
    guard::remember_browser(&state, response, &binding, new_binding)
}

/// The code page's form: the code is counted, then looked up.
#[utoipa::path(
    post,
    path = "/device",
    tag = writ_edge::openapi::tag::BROWSER,
    request_body(content = DeviceForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The confirmation page; not signed in, the sign-in page, which comes back here.", content_type = "text/html"),
        (status = 400, description = "The code page again: the code is not valid or has expired.", content_type = "text/html"),
        (status = 403, description = "A page: the form expired, or its CSRF token is not this browser's.", content_type = "text/html"),
        (status = 429, description = "The code page again: too many wrong codes from this address.", content_type = "text/html"),
    )
)]
pub async fn submit(
    State(state): State<CommandState>,
    ClientAddress(address): ClientAddress,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (form, binding) = match guard::posted_form(&state, &parts.headers, body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let typed = form.get("user_code").unwrap_or_default();
    verify(&state, &parts.headers, &binding, address, typed).await
}

/// Finds the pending grant the typed code names, then signs the person in
/// or asks them to confirm.
async fn verify(
    state: &CommandState,
    headers: &HeaderMap,
    binding: &str,
    address: Option<std::net::IpAddr>,
    typed: &str,
) -> Response {
    let throttle = &state.device.user_codes;
    let key = address_key(address);
    if let Err(wait) = throttle.check(&key) {
        let mut response = entry(
            state,
            binding,
            typed,
            Some("Too many wrong codes. Wait a minute and try again."),
            StatusCode::TOO_MANY_REQUESTS,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
        return response;
    }
    let found = match pending_grant(state, typed).await {
        Ok(found) => found,
        Err(Lookup::Unavailable) => return pages::unavailable(),
        Err(Lookup::NotPending) => {
            throttle.record_failure(&key);
            return entry(
                state,
                binding,
                typed,
                Some(NO_SUCH_CODE),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let session = match session::current(state, headers).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            let after = After::Device(user_code::display(&found.code));
            return login::page(state, binding, &after, None, StatusCode::OK).await;
        }
        Err(_) => return pages::unavailable(),
    };
    confirm(state, binding, found, &session).await
}

struct Found {
    gid: String,
    code: String,
    grant: Grant,
    client_name: String,
}

enum Lookup {
    NotPending,
    Unavailable,
}

/// A grant waiting for its answer, not expired, of a client still enabled.
async fn pending_grant(state: &CommandState, typed: &str) -> Result<Found, Lookup> {
    let code = user_code::normalize(typed).ok_or(Lookup::NotPending)?;
    let gid = grant_of_user_code(&state.key_ring, &code);
    let grant = state
        .executor
        .load::<Grant>(&gid)
        .await
        .map_err(|_| Lookup::Unavailable)?;
    let now = state.executor.services().now();
    let waiting = grant.status == GrantStatus::CodePending
        && grant
            .device
            .as_ref()
            .is_some_and(|device| device.answer.is_none() && now < device.expires_at);
    if !waiting {
        return Err(Lookup::NotPending);
    }
    let client = load_client(state, &grant.client_id)
        .await
        .map_err(|()| Lookup::Unavailable)?
        .ok_or(Lookup::NotPending)?;
    Ok(Found {
        gid,
        code,
        client_name: client.settings.name.clone(),
        grant,
    })
}

/// After the sign-in page that [`verify`] led to: the code it sealed was
/// counted and found then, so it is looked up again without counting.
pub async fn confirm_signed_in(
    state: &CommandState,
    binding: &str,
    code: &str,
    session: &LiveSession,
) -> Response {
    match pending_grant(state, code).await {
        Ok(found) => confirm(state, binding, found, session).await,
        Err(Lookup::Unavailable) => pages::unavailable(),
        Err(Lookup::NotPending) => entry(
            state,
            binding,
            code,
            Some(NO_SUCH_CODE),
            StatusCode::BAD_REQUEST,
        ),
    }
}

/// The throttle's key: the address, or for IPv6 its /64, which one
/// subscriber usually holds whole.
fn address_key(address: Option<std::net::IpAddr>) -> String {
    match address {
        Some(std::net::IpAddr::V6(v6)) => {
            let segments = v6.segments();
            format!(
                "{:x}:{:x}:{:x}:{:x}::/64",
                segments[0], segments[1], segments[2], segments[3]
            )
        }
        other => format!("{other:?}"),
    }
}

async fn confirm(
    state: &CommandState,
    binding: &str,
    found: Found,
    session: &LiveSession,
) -> Response {
    let username = session.username(state, "you").await;
    let shown = Shown {
        gid: found.gid,
        user_code: found.code,
        client_id: found.grant.client_id.clone(),
        scopes: found.grant.scopes.clone(),
        sub: session.sub.clone(),
        shown_at: state.executor.services().now(),
    };
    let request = state.browser.key.seal(binding, PURPOSE, &shown);
    pages::render(
        StatusCode::OK,
        &pages::DeviceConfirm {
            client_name: &found.client_name,
            username: &username,
            user_code: &user_code::display(&shown.user_code),
            scopes: shown.scopes.iter().map(describe_scope).collect(),
            csrf: &state.browser.key.csrf(binding),
            request: &request,
        },
    )
}

/// Allow or deny: only the person the page was shown to, in the browser
/// it was shown in, within the form's lifetime (R46).
#[utoipa::path(
    post,
    path = "/device/decision",
    tag = writ_edge::openapi::tag::BROWSER,
    request_body(content = DeviceDecisionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A page: the device is connected, or was refused.", content_type = "text/html"),
        (status = 400, description = "A page: no decision, or the code expired or was answered meanwhile.", content_type = "text/html"),
        (status = 403, description = "A page: the form expired, or its CSRF token is not this browser's.", content_type = "text/html"),
    )
)]
pub async fn decide(
    State(state): State<CommandState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (form, binding) = match guard::posted_form(&state, &headers, body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let now = state.executor.services().now();
    let form_ttl = chrono::Duration::from_std(state.browser.request_ttl).unwrap_or_default();
    let Some(shown) = state
        .browser
        .key
        .open::<Shown>(&binding, PURPOSE, form.get("request"))
        .filter(|shown| now < shown.shown_at + form_ttl)
    else {
        return expired();
    };
    let session = match session::current(&state, &headers).await {
        Ok(Some(session)) if session.sub == shown.sub => session,
        Ok(_) => return expired(),
        Err(_) => return pages::unavailable(),
    };
    let allow = match form.get("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => return pages::error(StatusCode::BAD_REQUEST, "Choose Allow or Deny."),
    };
    let metadata = user_metadata(&session.sub, &request_id(&headers), Some(&shown.client_id));
    let command = GrantCommand::DecideDevice {
        sub: session.sub.clone(),
        auth_time: session.auth_time,
        sid: Some(session.sid.clone()),
        allow,
    };
    match state
        .executor
        .execute::<Grant>(&shown.gid, command, &metadata)
        .await
    {
        Ok(_) => {}
        Err(ExecuteError::Rejected(
            GrantError::AlreadyDecided | GrantError::DeviceCodeExpired | GrantError::Revoked,
        )) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "This code has expired or was already answered. Start again on your device.",
            )
        }
        Err(_) => return pages::unavailable(),
    }
    // A logout racing the approval may have looked for the session's
    // grants before this one had its session: asked again, it ends it.
    if allow && matches!(session::current(&state, &headers).await, Ok(None)) {
        let revoke = GrantCommand::Revoke {
            by: format!("user:{}", session.sub),
            reason: "logout".into(),
        };
        let _ = state
            .executor
            .execute::<Grant>(&shown.gid, revoke, &metadata)
            .await;
        return expired();
    }
    if !allow {
        return pages::render(
            StatusCode::OK,
            &pages::DeviceDone {
                title: "Device refused",
                message: "The device was not given access. Nothing was shared with it.",
            },
        );
    }
    // Recorded once the approval stands, so a failed one leaves no consent
    // behind; with it the account page lists the device's access.
    let recorded = super::consent::record(
        &state,
        &session.sub,
        &shown.client_id,
        &shown.scopes,
        &metadata,
    );
    if let Err(err) = recorded.await {
        tracing::warn!(error = %err, "a device was approved but its consent was not recorded");
    }
    let (title, message) = (
        "Device connected",
        "Your device is now signed in. Return to it to continue.",
    );
    pages::render(StatusCode::OK, &pages::DeviceDone { title, message })
}

/// The page to type a code on.
fn entry(
    state: &CommandState,
    binding: &str,
    typed: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    pages::render(
        status,
        &pages::Device {
            error,
            csrf: &state.browser.key.csrf(binding),
            user_code: typed,
        },
    )
}
