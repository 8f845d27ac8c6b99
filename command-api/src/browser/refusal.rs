//! Saying no to an authorization request: an error page while the client
//! or its redirect URI is in doubt (R2), otherwise a redirect back with
//! `error`, `state` and `iss` (RFC 9207).

use axum::http::StatusCode;
use axum::response::Response;

use super::pages::{self, see_other, with_query};
use super::request::{Pending, Refusal};
use crate::CommandState;

pub fn refuse(state: &CommandState, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(message) => pages::error(StatusCode::BAD_REQUEST, message),
        Refusal::Redirect {
            redirect_uri,
            state: client_state,
            error,
            description,
        } => see_other(&with_query(
            &redirect_uri,
            &[
                ("error", Some(error)),
                ("error_description", Some(&description)),
                ("state", client_state.as_deref()),
                ("iss", Some(&state.issuer)),
            ],
        )),
    }
}

pub fn redirect_error(
    state: &CommandState,
    pending: &Pending,
    error: &'static str,
    why: &str,
) -> Response {
    refuse(
        state,
        Refusal::Redirect {
            redirect_uri: pending.redirect_uri.clone(),
            state: pending.state.clone(),
            error,
            description: why.to_owned(),
        },
    )
}
