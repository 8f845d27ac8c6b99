//! What every page form shares: it must parse, come from a browser that
//! holds its binding cookie, and carry that browser's CSRF token.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use writ_edge::{form, Form};

use super::pages;
use super::state::{self, BROWSER_COOKIE};
use crate::CommandState;

pub fn expired() -> Response {
    pages::error(
        StatusCode::FORBIDDEN,
        "This form has expired or was opened in another browser. Start again from the application.",
    )
}

/// The posted form and the browser's binding, or the page to answer with.
pub async fn posted_form(
    state: &CommandState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Form, String), Response> {
    let Ok(form) = form::read(headers, body).await else {
        return Err(pages::error(
            StatusCode::BAD_REQUEST,
            "The form was malformed.",
        ));
    };
    let Some(binding) = state::cookie(headers, BROWSER_COOKIE) else {
        return Err(expired());
    };
    if !state.browser.key.csrf_ok(&binding, form.get("csrf")) {
        return Err(expired());
    }
    Ok((form, binding))
}

/// Sets the binding cookie on a browser's first page.
pub fn remember_browser(
    state: &CommandState,
    mut response: Response,
    binding: &str,
    is_new: bool,
) -> Response {
    if is_new {
        state::set_cookie(
            &mut response,
            BROWSER_COOKIE,
            binding,
            state.browser.secure_cookies,
            None,
        );
    }
    response
}
