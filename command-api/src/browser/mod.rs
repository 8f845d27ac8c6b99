//! The browser side: the authorization endpoint and Writ's own pages
//! (sign-in, consent, account, logout). Every response carries the page
//! security headers; forms carry CSRF tokens bound to the browser.

mod account;
mod authorize;
mod code;
mod consent;
mod guard;
mod login;
mod logout;
mod pages;
mod refusal;
mod request;
mod session;
pub mod state;

use std::time::Duration;

use axum::middleware::map_response;
use axum::routing::{get, post};
use axum::Router;
use writ_edge::Throttle;

pub use state::BrowserKey;

use crate::CommandState;

#[derive(Clone)]
pub struct BrowserSettings {
    pub key: BrowserKey,
    pub code_ttl: Duration,
    pub session_ttl: Duration,
    /// How long a sealed request (a sign-in or consent form) stays usable.
    pub request_ttl: Duration,
    /// Failed sign-ins per client IP address.
    pub ip_throttle: Throttle,
    /// `Secure` cookies, when the issuer is https.
    pub secure_cookies: bool,
}

pub fn router() -> Router<CommandState> {
    Router::new()
        .route(
            "/authorize",
            get(authorize::authorize).post(authorize::authorize),
        )
        .route("/authorize/resume", get(authorize::resume))
        .route("/login", get(login::show).post(login::submit))
        .route("/consent", post(consent::submit))
        .route("/logout", get(logout::logout).post(logout::logout))
        .route("/account", get(account::show))
        .route("/account/consents", post(account::withdraw))
        .route("/assets/writ.css", get(pages::stylesheet))
        .layer(map_response(pages::secure_headers))
}
