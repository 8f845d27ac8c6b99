//! RP-Initiated Logout 1.0 (`end_session_endpoint`): ends the browser's
//! session and revokes the grants issued in it. It redirects only to a
//! `post_logout_redirect_uri` registered for the client that the
//! `id_token_hint` (or `client_id`) names, and never after a bad hint (R59).
//! Without a hint for the signed-in person it asks first; without a hint
//! at all it redirects only once the person has confirmed on the page.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use writ_edge::Form;

use super::described::{LogoutConfirmation, LogoutRequest};
use super::guard::{self, expired};
use super::pages::{self, see_other, with_query};
use super::request::load_client;
use super::session::{self, LiveSession};
use super::state::{self, SESSION_COOKIE};
use crate::metadata::request_id;
use crate::metadata::user_metadata;
use crate::CommandState;

/// Where to go once signed out, sealed into the confirmation form.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AfterLogout {
    redirect_uri: Option<String>,
    state: Option<String>,
}

struct Hint {
    sub: Option<String>,
    client_id: Option<String>,
}

/// An id_token of ours (expired is fine: it only names who and which app).
async fn hint(state: &CommandState, raw: &str) -> Option<Hint> {
    let verified = state.keys.verify(raw).await?;
    if verified.header["typ"] == "at+jwt" || verified.claims["iss"] != state.issuer.as_str() {
        return None;
    }
    let aud = &verified.claims["aud"];
    let client_id = aud
        .as_str()
        .or_else(|| aud.as_array()?.first()?.as_str())
        .map(str::to_owned);
    Some(Hint {
        sub: verified.claims["sub"].as_str().map(str::to_owned),
        client_id,
    })
}

/// The end-session endpoint (OpenID Connect RP-Initiated Logout 1.0):
/// ends the session and revokes the grants issued in it, or asks first.
#[utoipa::path(
    get,
    path = "/logout",
    tag = writ_edge::openapi::tag::BROWSER,
    params(LogoutRequest),
    responses(
        (status = 303, description = "Signed out: to the registered `post_logout_redirect_uri`, with `state`."),
        (status = 200, description = "A page: confirm signing out, or signed out.", content_type = "text/html"),
        (status = 400, description = "A page: the hint or redirect cannot be trusted.", content_type = "text/html"),
        (status = 503, description = "A page: try again shortly.", content_type = "text/html"),
    )
)]
pub async fn logout(
    State(state): State<CommandState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let Ok(params) = Form::parse(query.as_bytes()) else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "This sign-out request is malformed.",
        );
    };
    let hint = match params.get("id_token_hint") {
        Some(raw) => match hint(&state, raw).await {
            Some(hint) => Some(hint),
            None => {
                return pages::error(
                    StatusCode::BAD_REQUEST,
                    "The id_token_hint is not a token this server issued.",
                )
            }
        },
        None => None,
    };
    let client_id = match (
        hint.as_ref().and_then(|h| h.client_id.clone()),
        params.get("client_id"),
    ) {
        (Some(from_hint), Some(given)) if from_hint != given => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "client_id does not match the id_token_hint.",
            )
        }
        (from_hint, given) => from_hint.or(given.map(str::to_owned)),
    };
    let after = AfterLogout {
        redirect_uri: params.get("post_logout_redirect_uri").map(str::to_owned),
        state: params.get("state").map(str::to_owned),
    };
    if let Some(uri) = &after.redirect_uri {
        let registered = match &client_id {
            Some(client_id) => match load_client(&state, client_id).await {
                Ok(client) => client.is_some_and(|c| {
                    c.settings
                        .post_logout_redirect_uris
                        .iter()
                        .any(|r| r.as_str() == uri)
                }),
                Err(()) => return pages::unavailable(),
            },
            None => false,
        };
        if !registered {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "The post_logout_redirect_uri is not registered for this application.",
            );
        }
    }
    let session = match session::current(&state, &headers).await {
        Ok(session) => session,
        Err(_) => return pages::unavailable(),
    };
    match session {
        Some(session)
            if hint.as_ref().and_then(|h| h.sub.as_deref()) == Some(session.sub.as_str()) =>
        {
            end(&state, &headers, &session, &after).await
        }
        // RP-Initiated Logout 1.0 §3: redirect only with a valid
        // id_token_hint, or once the person has confirmed on the page.
        None if hint.is_some() || after.redirect_uri.is_none() => finish(&state, &after),
        _ => {
            let (binding, new_binding) = state::binding(&headers);
            let response = pages::render(
                StatusCode::OK,
                &pages::Logout {
                    csrf: &state.browser.key.csrf(&binding),
                    request: &state.browser.key.seal(&binding, "logout", &after),
                },
            );
            guard::remember_browser(&state, response, &binding, new_binding)
        }
    }
}

/// `POST /logout`: the confirmation form, or the account page's button.
/// The confirmation page's answer: signs out, then redirects where the
/// sealed request says. Logout parameters are not read from a POST.
#[utoipa::path(
    post,
    path = "/logout",
    tag = writ_edge::openapi::tag::BROWSER,
    request_body(content = LogoutConfirmation, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed out: to the registered `post_logout_redirect_uri`, with `state`."),
        (status = 200, description = "A page: signed out.", content_type = "text/html"),
        (status = 400, description = "A page: the form is malformed.", content_type = "text/html"),
        (status = 403, description = "A page: the form expired, or its CSRF token is not this browser's.", content_type = "text/html"),
        (status = 503, description = "A page: try again shortly.", content_type = "text/html"),
    )
)]
pub async fn confirm_logout(
    State(state): State<CommandState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    confirm(&state, &headers, body).await
}

async fn confirm(state: &CommandState, headers: &HeaderMap, body: Body) -> Response {
    let (form, binding) = match guard::posted_form(state, headers, body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let after = match form.get("request") {
        None => AfterLogout::default(),
        Some(sealed) => match state.browser.key.open(&binding, "logout", Some(sealed)) {
            Some(after) => after,
            None => return expired(),
        },
    };
    match session::current(state, headers).await {
        Ok(Some(session)) => end(state, headers, &session, &after).await,
        Ok(None) => finish(state, &after),
        Err(_) => pages::unavailable(),
    }
}

async fn end(
    state: &CommandState,
    headers: &HeaderMap,
    session: &LiveSession,
    after: &AfterLogout,
) -> Response {
    let metadata = user_metadata(&session.sub, &request_id(headers), None);
    if session::end(state, session, "logout", &metadata)
        .await
        .is_err()
    {
        return pages::unavailable();
    }
    let mut response = finish(state, after);
    state::set_cookie(
        &mut response,
        SESSION_COOKIE,
        "",
        state.browser.secure_cookies,
        Some(0),
    );
    response
}

fn finish(_state: &CommandState, after: &AfterLogout) -> Response {
    match &after.redirect_uri {
        Some(uri) => see_other(&with_query(uri, &[("state", after.state.as_deref())])),
        None => pages::render(StatusCode::OK, &pages::SignedOut),
    }
}
