//! The account page: the apps the signed-in person consented to, with
//! scopes and dates, and a button to withdraw each. Withdrawal is in force
//! before the 303 leaves: the consent's inline row makes that client's
//! tokens for this person inactive in the same commit (ADR 0012), and the
//! policy then records a `GrantRevoked` for each grant.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use writ_domain::consent::{stream_id, Consent, ConsentCommand};
use writ_store::views::consents;
use writ_store::ExecuteError;

use super::described::WithdrawalForm;
use super::guard;
use super::pages::{self, see_other, ConsentRow};
use super::session;
use super::state::{self, BROWSER_COOKIE};
use crate::metadata::request_id;
use crate::metadata::user_metadata;
use crate::CommandState;

/// The signed-in person's account: the apps they consented to.
#[utoipa::path(
    get,
    path = "/account",
    tag = writ_edge::openapi::tag::BROWSER,
    responses(
        (status = 200, description = "The account page.", content_type = "text/html"),
        (status = 303, description = "Not signed in: to `/login`."),
    )
)]
pub async fn show(State(state): State<CommandState>, headers: HeaderMap) -> Response {
    let session = match session::current(&state, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return see_other("/login"),
        Err(_) => return pages::unavailable(),
    };
    let Some(binding) = state::cookie(&headers, BROWSER_COOKIE) else {
        return see_other("/login");
    };
    let Ok(given) = consents::given_by(state.store.db(), &session.sub).await else {
        return pages::unavailable();
    };
    let consents = given
        .into_iter()
        .map(|consent| ConsentRow {
            granted_on: consent.granted_at.get(..10).unwrap_or_default().to_owned(),
            client_id: consent.client_id,
            client_name: consent.client_name,
            scopes: consent.scopes,
            granted_at: consent.granted_at,
        })
        .collect();
    let username = session.username(&state, &session.sub).await;
    pages::render(
        StatusCode::OK,
        &pages::Account {
            username: &username,
            consents,
            csrf: &state.browser.key.csrf(&binding),
        },
    )
}

/// Withdraws a consent; its grants stop working before the 303 leaves.
#[utoipa::path(
    post,
    path = "/account/consents",
    tag = writ_edge::openapi::tag::BROWSER,
    request_body(content = WithdrawalForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Withdrawn: back to `/account`."),
        (status = 400, description = "A page: no app chosen.", content_type = "text/html"),
        (status = 403, description = "A page: the form expired, or its CSRF token is not this browser's.", content_type = "text/html"),
    )
)]
pub async fn withdraw(
    State(state): State<CommandState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (form, _) = match guard::posted_form(&state, &headers, body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let session = match session::current(&state, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return see_other("/login"),
        Err(_) => return pages::unavailable(),
    };
    let Some(client_id) = form.get("client_id") else {
        return pages::error(StatusCode::BAD_REQUEST, "Choose an app.");
    };
    let command = ConsentCommand::Withdraw {
        by: format!("user:{}", session.sub),
        reason: "withdrawn by the user on the account page".into(),
    };
    let metadata = user_metadata(&session.sub, &request_id(&headers), Some(client_id));
    let stream = stream_id(&session.sub, client_id);
    match state
        .executor
        .execute::<Consent>(&stream, command, &metadata)
        .await
    {
        // Withdrawing twice, or an app never consented to, changes nothing.
        Ok(_) | Err(ExecuteError::Rejected(_)) => see_other("/account"),
        Err(_) => pages::unavailable(),
    }
}
