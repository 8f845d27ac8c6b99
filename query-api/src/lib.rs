//! The read side's HTTP API: health now; introspection, userinfo, JWKS,
//! discovery and audit queries arrive with their issues.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use axum::Router;
use writ_infra::Store;

#[derive(Clone)]
pub struct QueryState {
    pub store: Store,
    pub issuer: String,
}

pub fn router(state: QueryState) -> Router {
    writ_infra::health::router(state.store)
}
