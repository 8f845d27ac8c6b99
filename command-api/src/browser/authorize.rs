//! `GET|POST /authorize` and `GET /authorize/resume`: validate the
//! request, then sign in, ask for consent, or issue a code, whichever is
//! due. A code leaves in a 303 only after its `CodeIssued` is committed.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use writ_edge::{form, Form};
use writ_store::views::consents::{self, ConsentStatus};

use super::code::issue_code;
use super::described::{AuthorizationRequest, Resumption};
use super::guard;
use super::pages;
use super::refusal::{redirect_error, refuse};
use super::request::{self, fresh, load_client, Origin, Pending};
use super::session::{self, LiveSession};
use super::state;
use super::{par, request_object};
use crate::metadata::request_id;
use crate::CommandState;

/// The authorization endpoint (RFC 6749 §3.1): validates the request,
/// then signs the person in, asks for consent, or issues a code.
#[utoipa::path(
    get,
    path = "/authorize",
    tag = writ_edge::openapi::tag::BROWSER,
    params(AuthorizationRequest),
    responses(
        (status = 303, description = "To the sign-in or consent page, or back to the client's `redirect_uri` with a `code` or an RFC 6749 §4.1.2.1 error."),
        (status = 200, description = "A page: sign in, consent.", content_type = "text/html"),
        (status = 400, description = "A page explaining the error, when the client or `redirect_uri` cannot be trusted with a redirect.", content_type = "text/html"),
        (status = 503, description = "A page: try again shortly.", content_type = "text/html"),
    )
)]
pub async fn authorize(
    State(state): State<CommandState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = opaque_origin(&headers) {
        return refused;
    }
    let query = query.unwrap_or_default();
    if query.len() > form::MAX_FORM_BYTES {
        return pages::error(StatusCode::BAD_REQUEST, "This request is too large.");
    }
    answer(&state, &headers, Form::parse(query.as_bytes())).await
}

/// The authorization endpoint with its parameters as a form (OpenID
/// Connect Core §3.1.2.1); the query is not read.
#[utoipa::path(
    post,
    path = "/authorize",
    tag = writ_edge::openapi::tag::BROWSER,
    request_body(content = AuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To the sign-in or consent page, or back to the client's `redirect_uri` with a `code` or an RFC 6749 §4.1.2.1 error."),
        (status = 200, description = "A page: sign in, consent.", content_type = "text/html"),
        (status = 400, description = "A page explaining the error, when the client or `redirect_uri` cannot be trusted with a redirect.", content_type = "text/html"),
        (status = 503, description = "A page: try again shortly.", content_type = "text/html"),
    )
)]
pub async fn authorize_form(
    State(state): State<CommandState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = opaque_origin(&headers) {
        return refused;
    }
    let params = form::read(&headers, body).await;
    answer(&state, &headers, params).await
}

/// R45: a sandboxed or opaque origin is never a legitimate caller.
fn opaque_origin(headers: &HeaderMap) -> Option<Response> {
    headers
        .get(header::ORIGIN)
        .is_some_and(|o| o == "null")
        .then(|| {
            pages::error(
                StatusCode::BAD_REQUEST,
                "Requests from an opaque origin are refused.",
            )
        })
}

async fn answer<E>(state: &CommandState, headers: &HeaderMap, params: Result<Form, E>) -> Response {
    let Ok(params) = params else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "This request is malformed: a parameter is repeated or the body is not a form.",
        );
    };
    if request::oversized(
        &params,
        &[
            "client_id",
            "redirect_uri",
            "state",
            "nonce",
            "scope",
            "login_hint",
            "request_uri",
        ],
    ) {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "A parameter of this request is too long.",
        );
    }
    let client = match params.get("client_id") {
        Some(client_id) => match load_client(state, client_id).await {
            Ok(client) => client,
            Err(()) => return pages::unavailable(),
        },
        None => None,
    };
    let request_id = request_id(headers);
    let origin = Origin::Browser {
        par_required: state.browser.require_pushed_authorization_requests || state.fapi2,
    };
    let now = state.executor.services().now();
    let validated = match (
        params.get("request_uri"),
        params.get("request"),
        client.as_ref(),
    ) {
        (Some(_), Some(_), _) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "This request carries both a request object and a request_uri.",
            )
        }
        // RFC 9101 §5: the signed object is the request; every other
        // parameter but client_id is ignored.
        (None, Some(jwt), Some(client)) => match request_object::unpack(state, client, jwt).await {
            Ok(form) => request::validate(Some(client), &form, &request_id, now, origin),
            Err(why) => {
                tracing::info!(
                    why,
                    client_id = client.client_id,
                    request_id,
                    "request object refused"
                );
                return pages::error(
                    StatusCode::BAD_REQUEST,
                    "The application's signed request could not be verified. Start again from the application.",
                );
            }
        },
        (Some(request_uri), None, Some(client)) => {
            match par::take(state, client, request_uri, &request_id).await {
                Ok(validated) => validated,
                Err(par::Unusable::Refused) => {
                    return pages::error(
                        StatusCode::BAD_REQUEST,
                        "This sign-in link has expired or was already used. Start again from the application.",
                    )
                }
                Err(par::Unusable::Unavailable) => return pages::unavailable(),
            }
        }
        _ => request::validate(client.as_ref(), &params, &request_id, now, origin),
    };
    match validated {
        Ok(pending) => proceed(state, headers, pending).await,
        Err(refusal) => refuse(state, refusal),
    }
}

/// Where the sign-in page sends the browser back to, carrying the sealed
/// authorization request.
#[utoipa::path(
    get,
    path = "/authorize/resume",
    tag = writ_edge::openapi::tag::BROWSER,
    params(Resumption),
    responses(
        (status = 303, description = "On with the authorization: consent, or the client's `redirect_uri`."),
        (status = 200, description = "The consent page.", content_type = "text/html"),
        (status = 400, description = "A page: the client is no longer there.", content_type = "text/html"),
        (status = 403, description = "A page: the request expired or is not this browser's.", content_type = "text/html"),
    )
)]
pub async fn resume(
    State(state): State<CommandState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let params = Form::parse(query.as_bytes()).unwrap_or_default();
    let (binding, _) = state::binding(&headers);
    let pending: Option<Pending> =
        state
            .browser
            .key
            .open(&binding, "resume", params.get("request"));
    match pending {
        Some(pending) if fresh(&state, &pending) => {
            // The client may have been disabled while the person signed in.
            match load_client(&state, &pending.client_id).await {
                Ok(Some(_)) => proceed(&state, &headers, pending).await,
                Ok(None) => pages::error(
                    StatusCode::BAD_REQUEST,
                    "This application is no longer available.",
                ),
                Err(()) => pages::unavailable(),
            }
        }
        _ => pages::error(
            StatusCode::FORBIDDEN,
            "This sign-in link has expired or belongs to another browser. Start again from the application.",
        ),
    }
}

/// Whether the session satisfies the request: a sign-in after the request
/// began always does; otherwise `prompt=login` and `max_age` may demand one.
fn signed_in_enough(
    pending: &Pending,
    session: &LiveSession,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    if session.auth_time >= pending.requested_at {
        return true;
    }
    let age = (now - session.auth_time).num_seconds().max(0) as u64;
    !pending.prompt.login && pending.max_age.is_none_or(|max| age <= max)
}

/// The next step for a valid request in this browser.
pub async fn proceed(state: &CommandState, headers: &HeaderMap, pending: Pending) -> Response {
    let (binding, new_binding) = state::binding(headers);
    let session = match session::current(state, headers).await {
        Ok(session) => {
            let now = state.executor.services().now();
            session.filter(|s| signed_in_enough(&pending, s, now))
        }
        Err(_) => return pages::unavailable(),
    };
    let response = match session {
        None if pending.prompt.none => redirect_error(
            state,
            &pending,
            "login_required",
            "the user is not signed in",
        ),
        None => {
            let after = super::login::After::Authorization(Box::new(pending));
            super::login::page(state, &binding, &after, None, StatusCode::OK).await
        }
        Some(session) => match consent_covers(state, &session.sub, &pending).await {
            Err(()) => pages::unavailable(),
            Ok(true) if !pending.prompt.consent => issue_code(state, &pending, &session).await,
            Ok(_) if pending.prompt.none => redirect_error(
                state,
                &pending,
                "consent_required",
                "the user has not consented to these scopes",
            ),
            Ok(_) => super::consent::page(state, &binding, pending, &session).await,
        },
    };
    guard::remember_browser(state, response, &binding, new_binding)
}

/// A remembered consent skips the page until withdrawn or outgrown; it
/// never covers resources the client chose itself (RFC 8707 without a
/// configured audience), which the person has not seen.
async fn consent_covers(state: &CommandState, sub: &str, pending: &Pending) -> Result<bool, ()> {
    if pending.open_resources {
        return Ok(false);
    }
    let consent = consents::find(state.store.db(), sub, &pending.client_id)
        .await
        .map_err(|_| ())?;
    Ok(consent.is_some_and(|consent| {
        consent.status == ConsentStatus::Active
            && writ_domain::values::ScopeSet::parse(&consent.scopes)
                .is_ok_and(|held| pending.scopes.is_subset(&held))
    }))
}
