//! `GET|POST /authorize` and `GET /authorize/resume`: validate the
//! request, then sign in, ask for consent, or issue a code, whichever is
//! due. A code leaves in a 303 only after its `CodeIssued` is committed.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use writ_domain::grant::{Grant, GrantCommand};
use writ_domain::values::{CodeChallenge, RedirectUri, SecretHash};
use writ_edge::{form, Form};
use writ_infra::crypto::{random_token, sha256_hex};
use writ_infra::executor::Stream;
use writ_infra::store::statement::Statement;
use writ_infra::store::RowExt;
use writ_infra::Metadata;

use super::guard;
use super::pages::{self, see_other, with_query};
use super::request::{self, KnownClient, Pending, Refusal};
use super::session::{self, LiveSession};
use super::state;
use crate::token::{new_gid, request_id};
use crate::CommandState;

pub async fn authorize(
    State(state): State<CommandState>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // R45: a sandboxed or opaque origin is never a legitimate caller.
    if headers.get(header::ORIGIN).is_some_and(|o| o == "null") {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "Requests from an opaque origin are refused.",
        );
    }
    let params = if method == Method::POST {
        form::read(&headers, body).await
    } else {
        let query = query.unwrap_or_default();
        if query.len() > form::MAX_FORM_BYTES {
            return pages::error(StatusCode::BAD_REQUEST, "This request is too large.");
        }
        Form::parse(query.as_bytes())
    };
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
        ],
    ) {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "A parameter of this request is too long.",
        );
    }
    let client = match params.get("client_id") {
        Some(client_id) => match load_client(&state, client_id).await {
            Ok(client) => client,
            Err(()) => return pages::unavailable(),
        },
        None => None,
    };
    let now = state.executor.services().now();
    match request::validate(client.as_ref(), &params, &request_id(&headers), now) {
        Ok(pending) => proceed(&state, &headers, pending).await,
        Err(refusal) => refuse(&state, refusal),
    }
}

/// Where the sign-in page sends the browser back to.
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

/// Whether a sealed request is still within `authorization_request_ttl`.
pub fn fresh(state: &CommandState, pending: &Pending) -> bool {
    let age = (state.executor.services().now() - pending.requested_at)
        .to_std()
        .unwrap_or_default();
    age < state.browser.request_ttl
}

pub async fn load_client(state: &CommandState, client_id: &str) -> Result<Option<KnownClient>, ()> {
    let row = state
        .store
        .db()
        .fetch_optional(
            &Statement::new("SELECT settings, status FROM clients WHERE client_id = $1")
                .text(client_id),
        )
        .await
        .map_err(|_| ())?;
    Ok(row
        .filter(|row| row.text("status").as_deref() == Some("active"))
        .and_then(|row| serde_json::from_str(&row.text("settings")?).ok())
        .map(|settings| KnownClient {
            client_id: client_id.to_owned(),
            settings,
        }))
}

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

fn redirect_error(
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
        None => super::login::page(state, &binding, Some(&pending), None, StatusCode::OK).await,
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

/// A remembered consent skips the page until withdrawn or outgrown.
async fn consent_covers(state: &CommandState, sub: &str, pending: &Pending) -> Result<bool, ()> {
    let row = state
        .store
        .db()
        .fetch_optional(
            &Statement::new(
                "SELECT scopes, status FROM consents WHERE sub = $1 AND client_id = $2",
            )
            .text(sub)
            .text(pending.client_id.clone()),
        )
        .await
        .map_err(|_| ())?;
    Ok(row.is_some_and(|row| {
        row.text("status").as_deref() == Some("active")
            && writ_domain::values::ScopeSet::parse(&row.text("scopes").unwrap_or_default())
                .is_ok_and(|held| pending.scopes.is_subset(&held))
    }))
}

/// Issues the code and sends the browser back with it, `state` and `iss`.
pub async fn issue_code(
    state: &CommandState,
    pending: &Pending,
    session: &LiveSession,
) -> Response {
    let (Ok(redirect_uri), Ok(challenge)) = (
        RedirectUri::parse(&pending.redirect_uri),
        pending
            .code_challenge
            .as_deref()
            .map(CodeChallenge::parse_s256)
            .transpose(),
    ) else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "This request can no longer be completed.",
        );
    };
    // R72: the client's lifetimes bound how long a revocation of this
    // pending grant must be denied downstream; a client disabled since the
    // request was made gets no code.
    let client = match load_client(state, &pending.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "This request can no longer be completed.",
            )
        }
        Err(()) => return pages::unavailable(),
    };
    let token_ttl_secs = client
        .settings
        .access_token_ttl_secs
        .saturating_add(client.settings.refresh_token_ttl_secs);
    let code = random_token();
    let gid = new_gid();
    let command = GrantCommand::IssueCode {
        gid: gid.clone(),
        client_id: pending.client_id.clone(),
        sub: session.sub.clone(),
        scopes: pending.scopes.clone(),
        audience: pending.audience.clone(),
        redirect_uri,
        code_hash: SecretHash(sha256_hex(code.as_bytes())),
        challenge,
        nonce: pending.nonce.clone(),
        request_id: pending.request_id.clone(),
        code_ttl_secs: state.browser.code_ttl.as_secs().max(1),
        auth_time: Some(session.auth_time),
        sid: Some(session.sid.clone()),
        redirect_uri_defaulted: pending.redirect_uri_defaulted,
        token_ttl_secs,
    };
    let metadata = user_metadata(&session.sub, &pending.request_id, Some(&pending.client_id));
    match state
        .executor
        .execute_with::<Grant>(&gid, command, &metadata, Vec::new(), Stream::New)
        .await
    {
        Ok(_) => see_other(&with_query(
            &pending.redirect_uri,
            &[
                ("code", Some(&code)),
                ("state", pending.state.as_deref()),
                ("iss", Some(&state.issuer)),
            ],
        )),
        Err(_) => pages::unavailable(),
    }
}

pub fn user_metadata(sub: &str, request_id: &str, client_id: Option<&str>) -> Metadata {
    Metadata {
        actor: format!("user:{sub}"),
        request_id: request_id.to_owned(),
        client_id: client_id.map(str::to_owned),
    }
}
