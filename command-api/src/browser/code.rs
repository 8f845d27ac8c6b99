//! The last step of the code flow in the browser: the code is issued (its
//! `CodeIssued` committed) and the browser sent back with it.

use axum::http::StatusCode;
use axum::response::Response;
use writ_domain::client::ClientSettings;
use writ_domain::grant::{Grant, GrantCommand};
use writ_domain::values::{CodeChallenge, RedirectUri, SecretHash};
use writ_infra::crypto::{random_token, sha256_hex};
use writ_store::executor::Stream;

use super::pages::{self, see_other, with_query};
use super::request::{load_client, Pending};
use super::session::LiveSession;
use crate::issue::new_gid;
use crate::metadata::user_metadata;
use crate::CommandState;

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
        code_ttl_secs: code_ttl(state, &client.settings).as_secs().max(1),
        auth_time: Some(session.auth_time),
        sid: Some(session.sid.clone()),
        redirect_uri_defaulted: pending.redirect_uri_defaulted,
        token_ttl_secs,
        dpop_jkt: pending.dpop_jkt.clone(),
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

/// FAPI 2.0 §5.3.2.1: a FAPI client's codes live at most 60 seconds,
/// whatever the server's `code_ttl`.
fn code_ttl(state: &CommandState, settings: &ClientSettings) -> std::time::Duration {
    let ttl = state.browser.code_ttl;
    if settings.fapi2(state.fapi2) {
        ttl.min(std::time::Duration::from_secs(60))
    } else {
        ttl
    }
}
