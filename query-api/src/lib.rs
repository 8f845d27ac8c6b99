//! The read side's HTTP API: introspection (RFC 7662), userinfo, the JWKS,
//! the revocation feed (server-sent events), token status lists,
//! discovery (OpenID Connect Discovery and RFC 8414), health. Every answer
//! about a token comes from the inline rows on the primary database.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod audit;
mod audit_http;
mod discovery;
mod introspect;
mod revocations;
mod status_lists;
mod userinfo;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use writ_edge::{address, Throttle, TrustedProxies};
use writ_infra::keys::KeyRing;
use writ_infra::signing::KeySet;
use writ_store::Store;

pub use revocations::{FeedLimits, RevocationFeed};
pub use status_lists::StatusListSettings;

/// What every handler shares, behind one `Arc`: axum clones the state for
/// each request, and a clone of the fields was measurable on the hot paths.
#[derive(Clone)]
pub struct QueryState(std::sync::Arc<QueryContext>);

impl std::ops::Deref for QueryState {
    type Target = QueryContext;

    fn deref(&self) -> &QueryContext {
        &self.0
    }
}

impl From<QueryContext> for QueryState {
    fn from(context: QueryContext) -> Self {
        Self(std::sync::Arc::new(context))
    }
}

pub struct QueryContext {
    pub store: Store,
    pub issuer: String,
    /// Public base URLs of the two APIs, for discovery (both the issuer
    /// unless a split deployment sets them).
    pub command_url: String,
    pub query_url: String,
    pub keys: KeySet,
    /// The clock expiry is judged by: the database's (F12).
    pub services: writ_domain::Services,
    pub key_ring: KeyRing,
    /// Failed client authentications, per client and address.
    pub throttle: Throttle,
    /// `private_key_jwt`: the issuer, this API's public URL, client keys.
    pub assertions: writ_edge::client_assertion::Assertions,
    /// DPoP proofs (RFC 9449) at userinfo.
    pub dpop: writ_edge::dpop::DpopSettings,
    /// Every client is held to FAPI 2.0 (docs/fapi2.md): discovery says
    /// so, and client authentication admits `private_key_jwt` only.
    pub fapi2: bool,
    /// Whose forwarding headers name the client's address.
    pub trusted_proxies: TrustedProxies,
    /// Whether `/register` is open, so discovery lists it only then.
    pub registration_enabled: bool,
    /// The access tokens' signature algorithm, which also signs RFC 9701
    /// introspection answers.
    pub signing_alg: String,
    /// Every client must push its authorization requests (RFC 9126 §5).
    pub require_pushed_authorization_requests: bool,
    /// The bearer token of the audit API; unset, its routes answer 404.
    pub audit_token: Option<String>,
    /// Becomes true at shutdown: the revocation feed's streams end then,
    /// so they do not hold the graceful shutdown open.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The revocation feed's shared reader and per-client stream counts:
    /// one per process.
    pub feed: RevocationFeed,
    /// Token status lists: their `ttl` and `exp`, and the signed lists kept.
    pub status_lists: StatusListSettings,
}

impl axum::extract::FromRef<QueryState> for writ_edge::ClientAuthenticator {
    fn from_ref(state: &QueryState) -> Self {
        Self {
            store: state.store.clone(),
            throttle: state.throttle.clone(),
            assertions: state.assertions.clone(),
            fapi2: state.fapi2,
        }
    }
}

pub fn router(state: QueryState) -> OpenApiRouter {
    let api = OpenApiRouter::new()
        .routes(routes!(introspect::introspect))
        .routes(routes!(userinfo::userinfo))
        .routes(routes!(discovery::jwks))
        .routes(routes!(revocations::revocations))
        .routes(routes!(discovery::openid_configuration))
        .routes(routes!(discovery::oauth_authorization_server))
        .routes(routes!(discovery::ssf_configuration))
        .routes(routes!(status_lists::status_list))
        .layer(axum::middleware::from_fn_with_state(
            state.trusted_proxies.clone(),
            address::resolve_client_address,
        ))
        .with_state(state.clone());
    api.merge(audit_http::router(state.clone()))
        .merge(writ_edge::health::router(state.store.clone()))
}
