//! Discovery documents (OpenID Connect Discovery 1.0, RFC 8414) and the
//! JWKS.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use writ_store::views::clients::{self, ClientRow};

use writ_edge::client_assertion::ALGORITHMS;
use writ_edge::openapi::tag;

use crate::QueryState;

fn metadata(state: &QueryState) -> Value {
    let command = state.command_url.trim_end_matches('/');
    let query = state.query_url.trim_end_matches('/');
    let mut document = json!({
        "issuer": state.issuer,
        "authorization_endpoint": format!("{command}/authorize"),
        "token_endpoint": format!("{command}/token"),
        "end_session_endpoint": format!("{command}/logout"),
        "revocation_endpoint": format!("{command}/revoke"),
        "pushed_authorization_request_endpoint": format!("{command}/par"),
        "device_authorization_endpoint": format!("{command}/device_authorization"),
        "require_pushed_authorization_requests": state.require_pushed_authorization_requests,
        "jwks_uri": format!("{query}/jwks"),
        "introspection_endpoint": format!("{query}/introspect"),
        "userinfo_endpoint": format!("{query}/userinfo"),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token", "password", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:token-exchange"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "scopes_supported": ["openid", "profile", "email", "offline_access", writ_infra::ssf::SCOPE],
        "claims_supported": ["sub", "iss", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "name", "email"],
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ALGORITHMS,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": ALGORITHMS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": ALGORITHMS,
        "introspection_signing_alg_values_supported": [state.signing_alg],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "access_token_signing_alg_values_supported": ["ES256", "EdDSA"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported": ALGORITHMS,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "dpop_signing_alg_values_supported": writ_edge::dpop::ALGORITHMS,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        // Writ's own pointer to its Shared Signals transmitter.
        "ssf_configuration_uri": format!("{}/.well-known/ssf-configuration", state.issuer.trim_end_matches('/')),
    });
    // FAPI 2.0 for every client: the only method that authenticates at
    // the client's endpoints (introspection, for resource servers, keeps
    // its methods), and every request pushed.
    if state.fapi2 {
        for methods in [
            "token_endpoint_auth_methods_supported",
            "revocation_endpoint_auth_methods_supported",
        ] {
            document[methods] = json!(["private_key_jwt"]);
        }
        document["require_pushed_authorization_requests"] = json!(true);
        for algs in [
            "token_endpoint_auth_signing_alg_values_supported",
            "revocation_endpoint_auth_signing_alg_values_supported",
            "introspection_endpoint_auth_signing_alg_values_supported",
            "request_object_signing_alg_values_supported",
            "dpop_signing_alg_values_supported",
            "id_token_signing_alg_values_supported",
        ] {
            if let Some(listed) = document[algs].as_array_mut() {
                listed.retain(|alg| {
                    alg.as_str()
                        .is_some_and(|alg| writ_edge::fapi2::admits(alg, true))
                });
            }
        }
    }
    if state.registration_enabled {
        document["registration_endpoint"] = json!(format!("{command}/register"));
    }
    document
}

fn cacheable(body: Value, seconds: u32) -> Response {
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={seconds}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// OpenID Connect Discovery 1.0 metadata.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = tag::OAUTH,
    responses((status = 200, description = "The provider's metadata: endpoints, supported grants, algorithms and claims.", body = Object))
)]
pub async fn openid_configuration(State(state): State<QueryState>) -> Response {
    cacheable(metadata(&state), 300)
}

/// RFC 8414 authorization server metadata (the same document).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = tag::OAUTH,
    responses((status = 200, description = "The server's metadata.", body = Object))
)]
pub async fn oauth_authorization_server(State(state): State<QueryState>) -> Response {
    cacheable(metadata(&state), 300)
}

/// The Shared Signals transmitter's metadata (SSF 1.0 §7.1): its
/// endpoints are the command API's, its keys the OpenID ones.
#[utoipa::path(
    get,
    path = "/.well-known/ssf-configuration",
    tag = tag::OAUTH,
    responses((status = 200, description = "The transmitter's metadata: delivery methods and stream management endpoints.", body = Object))
)]
pub async fn ssf_configuration(State(state): State<QueryState>) -> Response {
    let command = state.command_url.trim_end_matches('/');
    let query = state.query_url.trim_end_matches('/');
    let document = json!({
        "spec_version": "1_0",
        "issuer": state.issuer,
        "jwks_uri": format!("{query}/jwks"),
        "delivery_methods_supported": [writ_infra::ssf::PUSH, writ_infra::ssf::POLL],
        "configuration_endpoint": format!("{command}/ssf/streams"),
        "status_endpoint": format!("{command}/ssf/status"),
        "add_subject_endpoint": format!("{command}/ssf/subjects/add"),
        "remove_subject_endpoint": format!("{command}/ssf/subjects/remove"),
        "verification_endpoint": format!("{command}/ssf/verify"),
        "critical_subject_members": [],
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        "default_subjects": "ALL",
    });
    cacheable(document, 300)
}

/// Retired keys stay published for the longest access-token lifetime any
/// client has, so every token they signed can still be verified.
async fn longest_token_ttl(state: &QueryState) -> Duration {
    let longest = clients::all(state.store.db())
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(ClientRow::settings)
        .map(|settings| settings.access_token_ttl_secs)
        .max()
        .unwrap_or(0);
    Duration::from_secs(longest)
}

/// The public keys tokens are signed with (RFC 7517), retired keys
/// included for as long as a token they signed can live.
#[utoipa::path(
    get,
    path = "/jwks",
    tag = tag::OAUTH,
    responses((status = 200, description = "A JWK Set.", body = Object))
)]
pub async fn jwks(State(state): State<QueryState>) -> Response {
    let ttl = longest_token_ttl(&state).await;
    cacheable(state.keys.jwks(state.services.now(), ttl), 60)
}
