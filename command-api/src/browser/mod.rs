//! The browser side: the authorization endpoint and Writ's own pages
//! (sign-in, consent, account, logout). Every response carries the page
//! security headers; forms carry CSRF tokens bound to the browser.

mod account;
mod authorize;
mod code;
mod consent;
mod described;
mod device;
mod guard;
mod login;
mod logout;
mod pages;
pub mod par;
mod refusal;
mod request;
mod request_object;
mod session;
pub mod state;

use std::time::Duration;

use axum::middleware::map_response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use writ_edge::Throttle;

pub use pages::with_query;
pub use state::BrowserKey;

use crate::CommandState;

#[derive(Clone)]
pub struct BrowserSettings {
    pub key: BrowserKey,
    pub code_ttl: Duration,
    pub session_ttl: Duration,
    /// How long a sealed request (a sign-in or consent form) stays usable.
    pub request_ttl: Duration,
    /// How long a pushed request's `request_uri` lives (RFC 9126 §2.2).
    pub par_ttl: Duration,
    /// Every client's authorization requests must be pushed first.
    pub require_pushed_authorization_requests: bool,
    /// Pushes by public clients, per client address: their `client_id` is
    /// no credential, so these are the log's only anonymous writes.
    pub public_pushes: Throttle,
    /// Failed sign-ins per client IP address.
    pub ip_throttle: Throttle,
    /// `Secure` cookies, when the issuer is https.
    pub secure_cookies: bool,
}

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(authorize::authorize, authorize::authorize_form))
        .routes(routes!(authorize::resume))
        .routes(routes!(login::show, login::submit))
        .routes(routes!(consent::submit))
        .routes(routes!(device::show, device::submit))
        .routes(routes!(device::decide))
        .routes(routes!(logout::logout, logout::confirm_logout))
        .routes(routes!(account::show))
        .routes(routes!(account::withdraw))
        .routes(routes!(pages::stylesheet))
        .layer(map_response(pages::secure_headers))
}
