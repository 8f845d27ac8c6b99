//! The write side's HTTP API: the authorization endpoint and Writ's pages
//! (sign-in, consent, account, logout), the token endpoint (authorization
//! code, client credentials, refresh, and the legacy password grant),
//! revocation (RFC 7009) and dynamic client registration (RFC 7591).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod browser;
mod client_management;
mod credentials;
pub mod device;
mod id_token;
mod issue;
mod metadata;
mod public_writes;
mod register;
mod revoke;
pub mod sign_out;
mod ssf;
mod token;

use std::time::Duration;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use writ_edge::{address, Throttle, TrustedProxies};
use writ_infra::keys::KeyRing;
use writ_infra::signing::KeySet;
use writ_store::{Executor, Store};
use writ_wire::audience;

pub use register::RegistrationDefaults;

/// What every handler shares, behind one `Arc`: axum clones the state for
/// each request, and a clone of the fields was measurable on the hot paths.
#[derive(Clone)]
pub struct CommandState(std::sync::Arc<CommandContext>);

impl std::ops::Deref for CommandState {
    type Target = CommandContext;

    fn deref(&self) -> &CommandContext {
        &self.0
    }
}

impl From<CommandContext> for CommandState {
    fn from(context: CommandContext) -> Self {
        Self(std::sync::Arc::new(context))
    }
}

pub struct CommandContext {
    pub executor: Executor,
    pub store: Store,
    pub issuer: String,
    /// Where browsers reach this API (the verification page's address).
    pub public_url: String,
    pub keys: KeySet,
    pub key_ring: KeyRing,
    /// Failed client authentications, per client and address.
    pub throttle: Throttle,
    /// `private_key_jwt`: the issuer, this API's public URL, client keys.
    pub assertions: writ_edge::client_assertion::Assertions,
    /// DPoP proofs (RFC 9449) at the token and PAR endpoints.
    pub dpop: writ_edge::dpop::DpopSettings,
    /// Every client is held to FAPI 2.0 (docs/fapi2.md).
    pub fapi2: bool,
    /// Failed sign-ins and password grants, per username (its keyed hash).
    pub account_throttle: Throttle,
    /// Whose forwarding headers name the client's address.
    pub trusted_proxies: TrustedProxies,
    pub signing_alg: String,
    pub refresh_token_idle_ttl: Duration,
    pub registration: RegistrationDefaults,
    /// RFC 8707 resources this server issues tokens for; empty, any
    /// absolute URI (a client's configured audience may still restrict it).
    pub allowed_resources: Vec<String>,
    pub browser: browser::BrowserSettings,
    pub device: device::DeviceSettings,
    /// How long an RFC 8936 poll waits for a SET before answering empty.
    pub ssf_long_poll: Duration,
    /// Becomes true at shutdown: held polls answer then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Where each JWT access token's status is published: the indices,
    /// and the lists' URIs under the query API's public URL.
    pub status_lists: std::sync::Arc<writ_infra::status_lists::StatusAllocator>,
}

impl axum::extract::FromRef<CommandState> for writ_edge::ClientAuthenticator {
    fn from_ref(state: &CommandState) -> Self {
        Self {
            store: state.store.clone(),
            throttle: state.throttle.clone(),
            assertions: state.assertions.clone(),
            fapi2: state.fapi2,
        }
    }
}

pub fn router(state: CommandState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(token::token))
        .routes(routes!(revoke::revoke))
        .routes(routes!(browser::par::push))
        .routes(routes!(device::authorize_device))
        .routes(routes!(register::register))
        .routes(routes!(
            client_management::read,
            client_management::replace,
            client_management::delete
        ))
        .merge(browser::router())
        .merge(ssf::router())
        .layer(axum::middleware::from_fn_with_state(
            state.trusted_proxies.clone(),
            address::resolve_client_address,
        ))
        .with_state(state)
}
