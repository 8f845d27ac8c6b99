//! The consent page: the client's name and the requested scopes in words,
//! Allow and Deny. Allow records the consent (remembered until withdrawn
//! or outgrown) and issues the code; Deny sends `access_denied` back.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use writ_domain::consent::{stream_id, Consent, ConsentCommand, ConsentError};
use writ_domain::values::ScopeSet;
use writ_store::{ExecuteError, Metadata};

use super::code::issue_code;
use super::described::ConsentForm;
use super::guard::{self, expired};
use super::pages::{self, describe_scope};
use super::refusal::refuse;
use super::request::{fresh, load_client};
use super::request::{Pending, Refusal};
use super::session::{self, LiveSession};
use crate::metadata::user_metadata;
use crate::CommandState;

pub async fn page(
    state: &CommandState,
    binding: &str,
    mut pending: Pending,
    session: &LiveSession,
) -> Response {
    let username = session.username(state, "you").await;
    pending.consent_for = Some(session.sub.clone());
    let request = state.browser.key.seal(binding, "consent", &pending);
    pages::render(
        StatusCode::OK,
        &pages::Consent {
            client_name: &pending.client_name,
            username: &username,
            scopes: pending.scopes.iter().map(describe_scope).collect(),
            resources: if pending.open_resources {
                &pending.audience
            } else {
                &[]
            },
            csrf: &state.browser.key.csrf(binding),
            request: &request,
        },
    )
}

/// Allow or deny: only the person the page was shown to, in the browser
/// it was shown in, can answer it (R46). Allow records the consent and
/// issues the code; deny sends `access_denied` to the client.
#[utoipa::path(
    post,
    path = "/consent",
    tag = writ_edge::openapi::tag::BROWSER,
    request_body(content = ConsentForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To the client's `redirect_uri`, with a `code` or `error=access_denied`."),
        (status = 400, description = "A page: no decision, or the form is malformed.", content_type = "text/html"),
        (status = 403, description = "A page: the form expired, or its CSRF token is not this browser's.", content_type = "text/html"),
    )
)]
pub async fn submit(
    State(state): State<CommandState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (form, binding) = match guard::posted_form(&state, &headers, body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let Some(pending) = state
        .browser
        .key
        .open::<Pending>(&binding, "consent", form.get("request"))
        .filter(|pending| fresh(&state, pending))
    else {
        return expired();
    };
    let session = match session::current(&state, &headers).await {
        Ok(Some(session)) if pending.consent_for.as_deref() == Some(session.sub.as_str()) => {
            session
        }
        Ok(_) => return expired(),
        Err(_) => return pages::unavailable(),
    };
    match form.get("decision") {
        Some("allow") => {}
        Some("deny") => {
            return refuse(
                &state,
                Refusal::Redirect {
                    redirect_uri: pending.redirect_uri.clone(),
                    state: pending.state.clone(),
                    error: "access_denied",
                    description: "the user denied the request".into(),
                },
            )
        }
        _ => return pages::error(StatusCode::BAD_REQUEST, "Choose Allow or Deny."),
    }
    // The client may have been disabled while the page was open.
    match load_client(&state, &pending.client_id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "This application is no longer available.",
            )
        }
        Err(()) => return pages::unavailable(),
    }
    let metadata = user_metadata(&session.sub, &pending.request_id, Some(&pending.client_id));
    match record(
        &state,
        &session.sub,
        &pending.client_id,
        &pending.scopes,
        &metadata,
    )
    .await
    {
        Ok(()) => issue_code(&state, &pending, &session).await,
        Err(_) => pages::unavailable(),
    }
}

/// Records that `sub` allowed `client_id` these scopes (`ConsentGranted`,
/// or `ConsentExtended` with the union). A consent that already covers
/// them is refused by the aggregate and needs nothing more.
pub async fn record(
    state: &CommandState,
    sub: &str,
    client_id: &str,
    scopes: &ScopeSet,
    metadata: &Metadata,
) -> Result<(), ExecuteError<ConsentError>> {
    let command = ConsentCommand::Grant {
        sub: sub.to_owned(),
        client_id: client_id.to_owned(),
        scopes: scopes.clone(),
        request_id: metadata.request_id.clone(),
    };
    match state
        .executor
        .execute::<Consent>(&stream_id(sub, client_id), command, metadata)
        .await
    {
        Ok(_) | Err(ExecuteError::Rejected(_)) => Ok(()),
        Err(err) => Err(err),
    }
}
