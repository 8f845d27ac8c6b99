//! `POST /register`: dynamic client registration (RFC 7591), open only to
//! holders of the configured initial access token. The same checks as
//! `writ client create` apply; the password grant stays CLI-only.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use writ_domain::client::{AuthMethod, Client, ClientCommand, ClientSettings};
use writ_domain::values::{
    ApplicationType, GrantType, IdTokenAlg, RedirectUri, ResourceUri, ScopeSet, SecretHash,
    TokenFormat,
};
use writ_edge::openapi::{tag, ErrorBody};
use writ_edge::{form, no_store, OAuthError};
use writ_infra::crypto::{random_token, sha256_hex};
use writ_store::executor::Stream;
use writ_store::{ExecuteError, Metadata};

use crate::metadata::request_id;
use crate::CommandState;

#[derive(Clone, Debug)]
pub struct RegistrationDefaults {
    /// The initial access token; `None` turns registration off.
    pub initial_access_token: Option<String>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// The command API's public base URL, for `registration_client_uri`.
    pub public_url: String,
}

/// Client metadata (RFC 7591 §2), plus Writ's own `revocation_feed` and
/// `resources`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Metadata7591 {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    response_types: Vec<String>,
    client_name: Option<String>,
    scope: Option<String>,
    token_endpoint_auth_method: Option<String>,
    application_type: Option<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    id_token_signed_response_alg: Option<String>,
    /// Writ's own metadata: may subscribe to `GET /revocations`.
    #[serde(default)]
    revocation_feed: bool,
    /// Writ's own: the RFC 8707 resource URIs this client introspects for.
    #[serde(default)]
    resources: Vec<String>,
    /// RFC 9126 §6: authorization requests must be pushed first.
    #[serde(default)]
    require_pushed_authorization_requests: bool,
    /// RFC 9449 §5.2: access tokens must be DPoP-bound.
    #[serde(default)]
    dpop_bound_access_tokens: bool,
    /// Writ's own: the FAPI 2.0 Security Profile (docs/fapi2.md), which
    /// sets the two above.
    #[serde(default)]
    fapi2_security_profile: bool,
    /// The public keys of a `private_key_jwt` client (RFC 7591 §2).
    jwks: Option<Value>,
    jwks_uri: Option<String>,
    /// OpenID Connect Back-Channel Logout 1.0 §2.2: https, or http on a
    /// loopback address; never a private, link-local or metadata address.
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    backchannel_logout_session_required: bool,
}

pub(crate) fn invalid(error: writ_edge::ErrorCode, description: impl Into<String>) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, error, description)
}

/// Dynamic client registration (RFC 7591), open to holders of the
/// initial access token. The password grant cannot be registered here.
#[utoipa::path(
    post,
    path = "/register",
    tag = tag::OAUTH,
    request_body = Metadata7591,
    security(("initial_access_token" = [])),
    responses(
        (status = 201, description = "The registered client's metadata with its `client_id`, `client_id_issued_at`, `registration_client_uri` and `registration_access_token` (RFC 7592), and, for a client that authenticates with a secret, `client_secret` (RFC 7591 §3.2.1).", body = Object),
        (status = 400, description = "`invalid_client_metadata` or `invalid_redirect_uri` (RFC 7591 §3.2.2).", body = ErrorBody),
        (status = 401, description = "No token: an empty body and a bare `WWW-Authenticate: Bearer` challenge; a wrong one: `invalid_token`.", body = ErrorBody),
        (status = 403, description = "`access_denied`: registration is not enabled.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<CommandState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(expected) = &state.registration.initial_access_token else {
        return OAuthError::new(
            StatusCode::FORBIDDEN,
            writ_edge::ErrorCode::AccessDenied,
            "dynamic registration is not enabled on this server",
        )
        .into_response();
    };
    let description = "a valid initial access token is required";
    if let Some(refused) =
        writ_edge::bearer::refusal(&headers, expected, writ_edge::bearer::REALM, description)
    {
        return refused;
    }
    handle(&state, &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn handle(
    state: &CommandState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let bytes = form::capped_body(body).await.map_err(|_| {
        invalid(
            writ_edge::ErrorCode::InvalidClientMetadata,
            "the body is too large",
        )
    })?;
    let metadata: Metadata7591 = serde_json::from_slice(&bytes).map_err(|_| {
        invalid(
            writ_edge::ErrorCode::InvalidClientMetadata,
            "the body must be a JSON object of client metadata",
        )
    })?;
    let settings = settings_from(state, metadata)?;
    let client_id = uuid::Uuid::new_v4().simple().to_string();
    let secret = settings.uses_secret().then(random_token);
    let registration_token = random_token();
    let command = ClientCommand::Register {
        client_id: client_id.clone(),
        settings: settings.clone(),
        secret_hash: secret
            .as_deref()
            .map(|s| SecretHash(sha256_hex(s.as_bytes()))),
        registration_token_hash: Some(SecretHash(sha256_hex(registration_token.as_bytes()))),
    };
    let metadata = Metadata {
        actor: "registration".into(),
        request_id: request_id(headers),
        client_id: Some(client_id.clone()),
        client_auth: None,
    };
    let committed = state
        .executor
        .execute_with::<Client>(&client_id, command, &metadata, Vec::new(), Stream::New)
        .await;
    let registered_at = match committed {
        Ok(committed) => committed.state.registered_at,
        Err(ExecuteError::Rejected(why)) => {
            return Err(invalid(
                writ_edge::ErrorCode::InvalidClientMetadata,
                why.to_string(),
            ))
        }
        Err(_) => return Err(OAuthError::unavailable()),
    };
    let issued_at = registered_at.map(|at| at.timestamp()).unwrap_or_default();
    let mut body = described(state, &client_id, &settings, issued_at);
    body["registration_access_token"] = Value::String(registration_token);
    if let Some(secret) = secret {
        body["client_secret"] = Value::String(secret);
        body["client_secret_expires_at"] = json!(0);
    }
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    no_store(&mut response);
    Ok(response)
}

/// A registered client's metadata as RFC 7591 §3.2.1 and RFC 7592 §3
/// describe it, without its secret and registration access token.
pub(crate) fn described(
    state: &CommandState,
    client_id: &str,
    settings: &ClientSettings,
    issued_at: i64,
) -> Value {
    let public_url = state.registration.public_url.trim_end_matches('/');
    let method = match settings.token_endpoint_auth_method {
        Some(method) => method,
        None if settings.public => AuthMethod::None,
        None => AuthMethod::ClientSecretBasic,
    };
    let mut described = json!({
        "client_id": client_id,
        "client_id_issued_at": issued_at,
        "registration_client_uri": format!("{public_url}/register/{client_id}"),
        "client_name": settings.name,
        "redirect_uris": settings.redirect_uris,
        "grant_types": settings.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": if settings.grant_types.contains(&GrantType::AuthorizationCode) { json!(["code"]) } else { json!([]) },
        "token_endpoint_auth_method": method.as_str(),
        "application_type": match settings.application_type { ApplicationType::Web => "web", ApplicationType::Native => "native" },
        "scope": settings.scopes.to_string(),
        "post_logout_redirect_uris": settings.post_logout_redirect_uris,
        "id_token_signed_response_alg": settings.id_token_signed_response_alg.unwrap_or_default().as_str(),
        "revocation_feed": settings.revocation_feed,
        "resources": settings.resources,
        "require_pushed_authorization_requests": settings.require_pushed_authorization_requests,
        "dpop_bound_access_tokens": settings.dpop_bound_access_tokens,
        "fapi2_security_profile": settings.fapi2_security_profile,
    });
    if let Some(jwks) = &settings.jwks {
        described["jwks"] = jwks.clone();
    }
    if let Some(uri) = &settings.jwks_uri {
        described["jwks_uri"] = json!(uri);
    }
    if let Some(uri) = &settings.backchannel_logout_uri {
        described["backchannel_logout_uri"] = json!(uri);
        described["backchannel_logout_session_required"] =
            json!(settings.backchannel_logout_session_required);
    }
    described
}

pub(crate) fn settings_from(
    state: &CommandState,
    metadata: Metadata7591,
) -> Result<ClientSettings, OAuthError> {
    let redirect_uris = metadata
        .redirect_uris
        .iter()
        .map(|raw| RedirectUri::parse(raw))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| invalid(writ_edge::ErrorCode::InvalidRedirectUri, why.to_string()))?;
    let post_logout_redirect_uris = metadata
        .post_logout_redirect_uris
        .iter()
        .map(|raw| RedirectUri::parse(raw))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| invalid(writ_edge::ErrorCode::InvalidClientMetadata, why.to_string()))?;
    let resources = metadata
        .resources
        .iter()
        .map(|raw| ResourceUri::parse(raw))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| invalid(writ_edge::ErrorCode::InvalidClientMetadata, why.to_string()))?;
    // Never `none`: OpenID Connect Dynamic Registration §2 would allow it.
    let id_token_alg = match metadata.id_token_signed_response_alg.as_deref() {
        None => None,
        Some(raw) => Some(IdTokenAlg::parse(raw).ok_or_else(|| {
            invalid(
                writ_edge::ErrorCode::InvalidClientMetadata,
                "id_token_signed_response_alg must be RS256, ES256 or EdDSA",
            )
        })?),
    }
    // RS256 is what no choice means: stored as none, a registration read
    // back and sent again is the same settings.
    .filter(|alg| *alg != IdTokenAlg::default());
    // FAPI 2.0 §5.4.1 rules RS256 out: such a client's default is ES256.
    let id_token_alg = match (metadata.fapi2_security_profile, id_token_alg) {
        (true, None) if metadata.id_token_signed_response_alg.is_some() => {
            return Err(invalid(
                writ_edge::ErrorCode::InvalidClientMetadata,
                "a FAPI 2.0 client's id_tokens are signed with ES256 or EdDSA",
            ))
        }
        (true, None) => Some(IdTokenAlg::ES256),
        (_, chosen) => chosen,
    };
    let raw_method = metadata
        .token_endpoint_auth_method
        .unwrap_or_else(|| "client_secret_basic".into());
    let Some(method) = AuthMethod::parse(&raw_method) else {
        return Err(invalid(
            writ_edge::ErrorCode::InvalidClientMetadata,
            format!("token_endpoint_auth_method {raw_method} is not supported"),
        ));
    };
    if metadata.fapi2_security_profile && method != AuthMethod::PrivateKeyJwt {
        return Err(invalid(
            writ_edge::ErrorCode::InvalidClientMetadata,
            "a FAPI 2.0 client authenticates with private_key_jwt",
        ));
    }
    let public = method == AuthMethod::None;
    let mut grant_types = Vec::new();
    for raw in &metadata.grant_types {
        match GrantType::parse(raw) {
            Some(GrantType::Password) | None => {
                return Err(invalid(
                    writ_edge::ErrorCode::InvalidClientMetadata,
                    format!("grant type {raw} cannot be registered dynamically"),
                ))
            }
            Some(grant) => grant_types.push(grant),
        }
    }
    if grant_types.is_empty() {
        grant_types = if redirect_uris.is_empty() {
            vec![GrantType::ClientCredentials]
        } else {
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        };
    }
    grant_types.sort();
    grant_types.dedup();
    if metadata.response_types.iter().any(|r| r != "code") {
        return Err(invalid(
            writ_edge::ErrorCode::InvalidClientMetadata,
            "only response_type code is supported",
        ));
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(invalid(
            writ_edge::ErrorCode::InvalidRedirectUri,
            "the authorization_code grant needs redirect_uris",
        ));
    }
    if public && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(invalid(
            writ_edge::ErrorCode::InvalidClientMetadata,
            "a public client cannot use client_credentials",
        ));
    }
    if public && grant_types.contains(&GrantType::TokenExchange) {
        return Err(invalid(
            writ_edge::ErrorCode::InvalidClientMetadata,
            "a public client cannot exchange tokens",
        ));
    }
    if public && metadata.revocation_feed {
        return Err(invalid(
            writ_edge::ErrorCode::InvalidClientMetadata,
            "a public client cannot authenticate to the revocation feed",
        ));
    }
    let scopes = ScopeSet::parse(metadata.scope.as_deref().unwrap_or("openid"))
        .map_err(|why| invalid(writ_edge::ErrorCode::InvalidClientMetadata, why.to_string()))?;
    let application_type = match metadata.application_type.as_deref() {
        None | Some("web") => ApplicationType::Web,
        Some("native") => ApplicationType::Native,
        Some(other) => {
            return Err(invalid(
                writ_edge::ErrorCode::InvalidClientMetadata,
                format!("application_type {other} is not web or native"),
            ))
        }
    };
    let name = metadata
        .client_name
        .unwrap_or_else(|| "registered client".into());
    if name.chars().count() > 200 || !writ_domain::values::displayable(&name) {
        return Err(invalid(
            writ_edge::ErrorCode::InvalidClientMetadata,
            "client_name must be up to 200 characters, none of them control or invisible format characters",
        ));
    }
    Ok(ClientSettings {
        name,
        redirect_uris,
        grant_types,
        scopes,
        public,
        application_type,
        token_format: TokenFormat::Jwt,
        access_token_ttl_secs: state.registration.access_token_ttl.as_secs(),
        refresh_token_ttl_secs: state.registration.refresh_token_ttl.as_secs(),
        audience: Vec::new(),
        resources,
        post_logout_redirect_uris,
        id_token_signed_response_alg: id_token_alg,
        revocation_feed: metadata.revocation_feed,
        require_pushed_authorization_requests: metadata.require_pushed_authorization_requests
            || metadata.fapi2_security_profile,
        dpop_bound_access_tokens: metadata.dpop_bound_access_tokens
            || metadata.fapi2_security_profile,
        fapi2_security_profile: metadata.fapi2_security_profile,
        token_endpoint_auth_method: Some(method),
        jwks: metadata.jwks,
        jwks_uri: metadata.jwks_uri,
        backchannel_logout_uri: metadata.backchannel_logout_uri,
        backchannel_logout_session_required: metadata.backchannel_logout_session_required,
    })
}
