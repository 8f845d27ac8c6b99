//! The write side's HTTP API. The authorization, token, revocation and
//! registration endpoints arrive with the token-service and browser-flow
//! issues; the router, its state and its place in `serve` are real now.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use axum::Router;
use writ_infra::Executor;

#[derive(Clone)]
pub struct CommandState {
    pub executor: Executor,
    pub issuer: String,
}

pub fn router(state: CommandState) -> Router {
    Router::new().with_state(state)
}
