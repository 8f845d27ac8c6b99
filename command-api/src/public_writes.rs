//! A public client's `client_id` is no credential, so the requests by
//! which it writes to the log (pushes to `/par`, device authorizations)
//! could grow the log for anyone: they are counted per client address and
//! refused past `ip_failure_limit` a window (ADR 0012). Confidential
//! clients are not counted.

use axum::http::StatusCode;
use writ_edge::client_auth::Method;
use writ_edge::{AuthenticatedClient, ClientAddress, ErrorCode, OAuthError};

use crate::CommandState;

/// Counts this request if its client is public; `what` names the kind of
/// request, which is counted apart from the others.
pub fn count(
    state: &CommandState,
    client: &AuthenticatedClient,
    address: &ClientAddress,
    what: &str,
) -> Result<(), OAuthError> {
    if client.method != Method::None {
        return Ok(());
    }
    let throttle = &state.browser.public_pushes;
    let key = format!("{what} {:?}", address.0);
    if let Err(retry_after) = throttle.check(&key) {
        return Err(OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InvalidRequest,
            format!("too many {what} requests from this address; retry later"),
        )
        .retry_after(retry_after));
    }
    throttle.record_failure(&key);
    Ok(())
}
