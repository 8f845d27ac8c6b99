//! The device authorization endpoint (RFC 8628 §3.1, §3.2): a device
//! without a browser gets a secret `device_code` to poll `/token` with and
//! a short `user_code` for a person to type at `/device`.
//!
//! The grant's stream id is derived from the user code (a keyed hash, so
//! the log and the tokens' `gid` do not reveal it), which lets the
//! verification page find the grant from what the person types, and makes
//! the store refuse a second live grant with the same code: the endpoint
//! then draws another.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use writ_domain::grant::{Grant, GrantCommand, GrantError};
use writ_domain::values::{user_code, GrantType};
use writ_edge::openapi::{tag, ErrorBody};
use writ_edge::{no_store, ClientRequest, ErrorCode, OAuthError, Throttle};
use writ_infra::crypto::{hmac_hex, random_token, random_user_code, sha256_hex};
use writ_infra::keys::KeyRing;
use writ_store::executor::Stream;
use writ_store::ExecuteError;

use crate::metadata::client_metadata;
use crate::{audience, CommandState};

/// RFC 8628 §3.5: each `slow_down` adds this to the device's interval.
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// Polls remembered per process: far more than devices polling at once.
const POLLS_REMEMBERED: usize = 100_000;
/// Draws of a user code before giving up (each collides with a live one
/// with odds of about one in 2^34 per code live).
const USER_CODE_DRAWS: usize = 3;

pub struct DeviceSettings {
    pub code_ttl: Duration,
    pub poll_interval: Duration,
    /// Wrong user codes typed on the verification page, per address.
    pub user_codes: Throttle,
    polls: Polls,
}

impl DeviceSettings {
    pub fn new(code_ttl: Duration, poll_interval: Duration, user_codes: Throttle) -> Self {
        Self {
            code_ttl,
            poll_interval,
            user_codes,
            polls: Polls::default(),
        }
    }

    /// RFC 8628 §3.5 `slow_down`: a device polling before its interval has
    /// passed is told so, and its interval grows by five seconds. Kept per
    /// process and bounded; a device spreading its polls over several
    /// processes is slowed by each (the grant itself records no poll).
    pub fn poll(&self, device_code_hash: &str) -> Result<(), OAuthError> {
        let now = Instant::now();
        let mut polls = self
            .polls
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(last) = polls.get_mut(device_code_hash) else {
            polls.put(
                device_code_hash.to_owned(),
                LastPoll {
                    at: now,
                    interval: self.poll_interval,
                },
            );
            return Ok(());
        };
        if now.duration_since(last.at) < last.interval {
            last.interval += SLOW_DOWN_STEP;
            last.at = now;
            return Err(crate::issue::polling(
                ErrorCode::SlowDown,
                &format!(
                    "polling too fast; wait {} seconds between requests",
                    last.interval.as_secs()
                ),
            ));
        }
        last.at = now;
        Ok(())
    }
}

struct LastPoll {
    at: Instant,
    interval: Duration,
}

struct Polls(Arc<Mutex<lru::LruCache<String, LastPoll>>>);

impl Default for Polls {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(POLLS_REMEMBERED).unwrap_or(NonZeroUsize::MIN);
        Self(Arc::new(Mutex::new(lru::LruCache::new(capacity))))
    }
}

/// The grant a user code names: an HMAC under the key file's key, so
/// that the short code cannot be recovered from the log by trying them
/// all, yet every process finds the same grant.
pub fn grant_of_user_code(key_ring: &KeyRing, normalized: &str) -> String {
    hmac_hex(
        &key_ring.key_encryption,
        &format!("writ device user_code v1\n{normalized}"),
    )
}

/// RFC 8628 §3.1.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the form; the handler reads it as `ClientRequest`.
pub struct DeviceAuthorizationForm {
    /// Space-separated; at most what the client may have.
    scope: Option<String>,
    /// RFC 8707 resource indicators; may repeat.
    resource: Option<Vec<String>>,
    /// Alone for a public client, or with `client_secret_post`.
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion: Option<String>,
    client_assertion_type: Option<String>,
}

/// RFC 8628 §3.2.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the JSON the handler renders.
pub struct DeviceAuthorizationResponse {
    /// Secret: the device polls `/token` with it.
    device_code: String,
    /// What the person types, as `XXXX-XXXX`.
    user_code: String,
    verification_uri: String,
    /// `verification_uri` with the code in its `user_code` parameter.
    verification_uri_complete: String,
    expires_in: u64,
    /// Seconds between polls.
    interval: u64,
}

/// The device authorization endpoint (RFC 8628 §3.1): a device asks for
/// a grant that a person approves elsewhere.
#[utoipa::path(
    post,
    path = "/device_authorization",
    tag = tag::OAUTH,
    request_body(content = DeviceAuthorizationForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "RFC 8628 §3.2, `Cache-Control: no-store`.", body = DeviceAuthorizationResponse),
        (status = 400, description = "`unauthorized_client` (the client is not registered for the device grant), `invalid_scope`, `invalid_target`, `invalid_request`.", body = ErrorBody),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate`.", body = ErrorBody),
        (status = 429, description = "Public clients only: too many device requests from this address; `Retry-After` says when to try again.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`: the store did not answer.", body = ErrorBody),
    )
)]
pub async fn authorize_device(
    State(state): State<CommandState>,
    request: ClientRequest,
) -> Result<Response, OAuthError> {
    let ClientRequest {
        client,
        form,
        request_id,
        address,
    } = request;
    if !client.settings.grant_types.contains(&GrantType::DeviceCode) {
        return Err(OAuthError::unauthorized_client(
            "this client is not registered for the device authorization grant",
        ));
    }
    crate::public_writes::count(&state, &client, &address, "device")?;
    let scopes = audience::scopes(&client.settings, form.get("scope"))?;
    // Something must be asked, or the person would allow nothing in words
    // and no consent could record it.
    if scopes.is_empty() {
        return Err(OAuthError::invalid_scope(
            "ask for at least one scope this client may have",
        ));
    }
    let audience = audience::resolve(
        &client.client_id,
        &client.settings,
        form.all("resource"),
        &state.allowed_resources,
    )?;
    let metadata = client_metadata(&client, request_id);
    let settings = &state.device;
    let device_code = random_token();
    for _ in 0..USER_CODE_DRAWS {
        let code = random_user_code();
        let gid = grant_of_user_code(&state.key_ring, &code);
        let command = GrantCommand::StartDeviceAuthorization {
            gid: gid.clone(),
            client_id: client.client_id.clone(),
            scopes: scopes.clone(),
            audience: audience.clone(),
            device_code_hash: writ_domain::values::SecretHash(sha256_hex(device_code.as_bytes())),
            request_id: metadata.request_id.clone(),
            ttl_secs: settings.code_ttl.as_secs().max(1),
            interval_secs: settings.poll_interval.as_secs().max(1),
            token_ttl_secs: client
                .settings
                .access_token_ttl_secs
                .saturating_add(client.settings.refresh_token_ttl_secs),
        };
        match state
            .executor
            .execute_with::<Grant>(&gid, command, &metadata, Vec::new(), Stream::New)
            .await
        {
            Ok(_) => return Ok(answer(&state, device_code, &code)),
            Err(ExecuteError::Rejected(GrantError::AlreadyExists)) => continue,
            Err(err) => return Err(OAuthError::unavailable().because(err)),
        }
    }
    Err(OAuthError::unavailable().because("no free user code after several draws"))
}

fn answer(state: &CommandState, device_code: String, code: &str) -> Response {
    let shown = user_code::display(code);
    let page = format!("{}/device", state.public_url.trim_end_matches('/'));
    let complete = crate::browser::with_query(&page, &[("user_code", Some(&shown))]);
    let mut response = Json(json!({
        "device_code": device_code,
        "user_code": shown,
        "verification_uri": page,
        "verification_uri_complete": complete,
        "expires_in": state.device.code_ttl.as_secs().max(1),
        "interval": state.device.poll_interval.as_secs().max(1),
    }))
    .into_response();
    no_store(&mut response);
    response
}
