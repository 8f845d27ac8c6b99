//! The sign-in page. Its form carries a CSRF token and the sealed
//! authorization request, both bound to this browser; a right password
//! starts (or renews) the session and answers 303, a wrong one issues
//! nothing and shows the page again.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::guard::{self, expired};
use super::pages::{self, see_other, with_query};
use super::request::fresh;
use super::request::Pending;
use super::session;
use super::state::{self, SESSION_COOKIE};
use writ_edge::ClientAddress;

use super::described::SignInForm;
use crate::credentials::{self, Checked};
use crate::metadata::request_id;
use crate::CommandState;

/// What a sign-in goes on with.
#[derive(Debug, Clone)]
pub enum After {
    /// The account page.
    Account,
    /// An authorization request.
    Authorization(Box<Pending>),
    /// The device verification page, with the user code typed there.
    Device(String),
}

/// Seals `After::Device`'s user code: a form field for no other purpose.
const DEVICE_PURPOSE: &str = "device login";

/// The sign-in page for this browser, with what follows sealed into it.
pub async fn page(
    state: &CommandState,
    binding: &str,
    after: &After,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let key = &state.browser.key;
    let (pending, device) = match after {
        After::Account => (None, String::new()),
        After::Authorization(pending) => (Some(&**pending), String::new()),
        After::Device(code) => (None, key.seal(binding, DEVICE_PURPOSE, code)),
    };
    let request = pending
        .map(|p| key.seal(binding, "login", p))
        .unwrap_or_default();
    pages::render(
        status,
        &pages::Login {
            client_name: pending.map(|p| p.client_name.as_str()),
            error,
            csrf: &key.csrf(binding),
            request: &request,
            device: &device,
            username: pending
                .and_then(|p| p.login_hint.as_deref())
                .unwrap_or_default(),
        },
    )
}

/// The sign-in page; a signed-in browser goes to its account instead.
#[utoipa::path(
    get,
    path = "/login",
    tag = writ_edge::openapi::tag::BROWSER,
    responses(
        (status = 200, description = "The sign-in page.", content_type = "text/html"),
        (status = 303, description = "Already signed in: to `/account`."),
    )
)]
pub async fn show(State(state): State<CommandState>, headers: HeaderMap) -> Response {
    match session::current(&state, &headers).await {
        Ok(Some(_)) => return see_other("/account"),
        Ok(None) => {}
        Err(_) => return pages::unavailable(),
    }
    let (binding, new_binding) = state::binding(&headers);
    let response = page(&state, &binding, &After::Account, None, StatusCode::OK).await;
    guard::remember_browser(&state, response, &binding, new_binding)
}

/// Signs in. A right password starts the session and answers 303; a
/// wrong one shows the page again, and repeated failures are throttled.
#[utoipa::path(
    post,
    path = "/login",
    tag = writ_edge::openapi::tag::BROWSER,
    request_body(content = SignInForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: on with the authorization, or to `/account`."),
        (status = 400, description = "The page again: a field is missing.", content_type = "text/html"),
        (status = 401, description = "The page again: the username or password is wrong.", content_type = "text/html"),
        (status = 403, description = "A page: the form expired, or its CSRF token is not this browser's.", content_type = "text/html"),
        (status = 429, description = "The page again: too many failures; `Retry-After` says when to try again.", content_type = "text/html"),
        (status = 503, description = "A page: try again shortly.", content_type = "text/html"),
    )
)]
pub async fn submit(
    State(state): State<CommandState>,
    ClientAddress(address): ClientAddress,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let (form, binding) = match guard::posted_form(&state, &headers, body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let key = &state.browser.key;
    let after = match (form.get("request"), form.get("device")) {
        (Some(sealed), _) => match key.open(&binding, "login", Some(sealed)) {
            Some(pending) if fresh(&state, &pending) => After::Authorization(Box::new(pending)),
            _ => return expired(),
        },
        (None, Some(sealed)) => match key.open(&binding, DEVICE_PURPOSE, Some(sealed)) {
            Some(code) => After::Device(code),
            None => return expired(),
        },
        (None, None) => After::Account,
    };
    let pending = match &after {
        After::Authorization(pending) => Some((**pending).clone()),
        _ => None,
    };
    let again = |error: &'static str, status| {
        let state = state.clone();
        let binding = binding.clone();
        let after = after.clone();
        async move { page(&state, &binding, &after, Some(error), status).await }
    };
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return again("Enter your username and password.", StatusCode::BAD_REQUEST).await;
    };
    let metadata = writ_store::Metadata {
        actor: "browser".into(),
        request_id: request_id(&headers),
        client_id: pending.as_ref().map(|p| p.client_id.clone()),
        client_auth: None,
    };
    let sub =
        match credentials::check(&state, username, password.to_owned(), address, &metadata).await {
            Ok(Checked::Verified(sub)) => sub,
            Ok(Checked::Failed) => {
                return again(
                    "The username or password is wrong.",
                    StatusCode::UNAUTHORIZED,
                )
                .await
            }
            Ok(Checked::Throttled(wait)) => {
                let mut response = again(
                    "Too many failed attempts. Wait a minute and try again.",
                    StatusCode::TOO_MANY_REQUESTS,
                )
                .await;
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
                return response;
            }
            Err(_) => return pages::unavailable(),
        };
    let existing = match session::current(&state, &headers).await {
        Ok(existing) => existing,
        Err(_) => return pages::unavailable(),
    };
    let metadata =
        crate::metadata::user_metadata(&sub, &metadata.request_id, metadata.client_id.as_deref());
    let Ok((session, cookie)) = session::sign_in(&state, existing, &sub, &metadata).await else {
        return pages::unavailable();
    };
    let mut response = match &after {
        After::Authorization(pending) => see_other(&with_query(
            "/authorize/resume",
            &[("request", Some(&key.seal(&binding, "resume", pending)))],
        )),
        // The code was looked up (and counted) before the sign-in page
        // sealed it, so the confirmation follows at once.
        After::Device(code) => {
            super::device::confirm_signed_in(&state, &binding, code, &session).await
        }
        After::Account => see_other("/account"),
    };
    if let Some(cookie) = cookie {
        let max_age = state.browser.session_ttl.as_secs();
        state::set_cookie(
            &mut response,
            SESSION_COOKIE,
            &cookie,
            state.browser.secure_cookies,
            Some(max_age),
        );
    }
    response
}
