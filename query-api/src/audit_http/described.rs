//! The audit API's answers, for its OpenAPI document. The handlers render
//! these rows from the audit queries' columns; the end-to-end test checks
//! every answer's keys against these names.
#![allow(dead_code)] // The fields are only described, never read.

use chrono::{DateTime, Utc};
use utoipa::{IntoResponses, ToSchema};
use writ_edge::openapi::ErrorBody;

/// A grant as it stood at a moment.
#[derive(ToSchema)]
pub struct Grant {
    gid: String,
    client_id: String,
    /// `authorization_code`, `client_credentials`, `password`,
    /// `device_code`, `token_exchange`; `code issued` or `device pending`
    /// before the code or device code is redeemed.
    kind: String,
    scopes: String,
    started_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    #[schema(pattern = "^(code issued|device pending|active|expired|revoked)$")]
    status: String,
    ended_at: Option<DateTime<Utc>>,
    reason: Option<String>,
    /// RFC 8693: the grant this one was exchanged from.
    parent_gid: Option<String>,
    /// RFC 8693 §4.1: who acts in it, the current actor first, each as
    /// `client_id` (with its `sub` in parentheses when that differs),
    /// separated by ` <- `.
    act: Option<String>,
}

/// One event of a subject's consent history.
#[derive(ToSchema)]
pub struct ConsentEvent {
    cursor: String,
    recorded_at: DateTime<Utc>,
    client_id: String,
    #[schema(pattern = "^(ConsentGranted|ConsentExtended|ConsentWithdrawn)$")]
    event: String,
    scopes: String,
    by: Option<String>,
    reason: Option<String>,
    request_id: Option<String>,
}

/// One event of a grant's lineage.
#[derive(ToSchema)]
pub struct LineageEvent {
    cursor: String,
    recorded_at: DateTime<Utc>,
    aggregate: String,
    event: String,
    actor: Option<String>,
    details: String,
}

/// Someone holding an active grant with a scope.
#[derive(ToSchema)]
pub struct Holder {
    sub: Option<String>,
    client_id: String,
    gid: String,
    scopes: String,
    started_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    /// RFC 8693: the actors of delegated access, as in [`Grant`]'s `act`.
    act: Option<String>,
}

/// The hash chains and signed checkpoints, checked.
#[derive(ToSchema)]
pub struct Verification {
    /// False on any break.
    intact: bool,
    events: u64,
    #[schema(value_type = Vec<Object>)]
    chain_breaks: Vec<()>,
    checkpoints: u64,
    checkpoint_public_key: String,
    #[schema(value_type = Vec<Object>)]
    checkpoint_failures: Vec<()>,
    last_sealed: Option<String>,
    unsealed_events: u64,
}

/// What every audit route that reads parameters may answer instead of its
/// rows.
#[derive(IntoResponses)]
pub enum Refusals {
    /// `invalid_request`: a parameter is missing or malformed.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    #[response(
        status = 401,
        description = "No token: an empty body and a bare `WWW-Authenticate: Bearer` challenge; a wrong one: `invalid_token`."
    )]
    Unauthorized(ErrorBody),
    /// No audit token is configured: the audit API is off.
    #[response(status = 404)]
    Off,
    /// `temporarily_unavailable`.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}
