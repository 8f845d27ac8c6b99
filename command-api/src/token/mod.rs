//! `POST /token` (RFC 6749 §3.2): authenticate the client, check that it
//! may use the grant type, then run the grant's command. A response leaves
//! only after its events, and the inline rows introspection reads, are
//! committed.

mod authorization_code;
mod client_credentials;
mod device_code;
mod exchange;
mod password;
mod refresh;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use writ_domain::values::GrantType;
use writ_edge::dpop::Refused;
use writ_edge::openapi::{tag, ErrorBody};
use writ_edge::{AuthenticatedClient, ClientRequest, Form, OAuthError};
use writ_store::Metadata;

use crate::{issue, CommandState};

/// What every grant's handler reads.
pub struct Grant<'a> {
    pub state: &'a CommandState,
    pub client: &'a AuthenticatedClient,
    pub form: &'a Form,
    pub metadata: &'a Metadata,
    pub proof: &'a issue::DpopProof<'a>,
}

/// A token request's form. Which fields a grant reads is RFC 6749's:
/// `authorization_code` reads `code`, `redirect_uri` and `code_verifier`
/// (RFC 7636); `refresh_token` reads `refresh_token`; `password` reads
/// `username` and `password`; the device code grant (RFC 8628) reads
/// `device_code`; token exchange (RFC 8693) reads `subject_token`,
/// `actor_token`, their types, `audience` and `requested_token_type`; the
/// others read `scope` and `resource`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the form; the handler reads it as `ClientRequest`.
pub struct TokenForm {
    #[schema(
        pattern = "^(authorization_code|client_credentials|refresh_token|password|urn:ietf:params:oauth:grant-type:device_code|urn:ietf:params:oauth:grant-type:token-exchange)$"
    )]
    grant_type: String,
    code: Option<String>,
    /// RFC 8628 §3.4.
    device_code: Option<String>,
    /// RFC 8693 §2.1: the token exchanged, and its type's URN.
    subject_token: Option<String>,
    subject_token_type: Option<String>,
    /// RFC 8693 §2.1: the acting party's access token.
    actor_token: Option<String>,
    actor_token_type: Option<String>,
    /// RFC 8693: the client_id of the service the new token is for.
    audience: Option<String>,
    /// RFC 8693: only `urn:ietf:params:oauth:token-type:access_token`.
    requested_token_type: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// Space-separated; narrows what the client or grant allows.
    scope: Option<String>,
    /// RFC 8707 resource indicators; may repeat.
    resource: Option<Vec<String>>,
    /// With `client_secret_post`, or alone for a public client.
    client_id: Option<String>,
    /// With `client_secret_post`.
    client_secret: Option<String>,
    /// With `private_key_jwt` (RFC 7523).
    client_assertion: Option<String>,
    client_assertion_type: Option<String>,
}

/// RFC 6749 §5.1.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the JSON `issue` renders.
pub struct TokenResponse {
    access_token: String,
    /// `DPoP` when the request carried a DPoP proof (RFC 9449 §5), else `Bearer`.
    token_type: String,
    expires_in: u64,
    scope: Option<String>,
    refresh_token: Option<String>,
    /// When `openid` was granted in the authorization code flow.
    id_token: Option<String>,
    /// RFC 8693 §2.2.1, at a token exchange.
    issued_token_type: Option<String>,
}

/// The token endpoint (RFC 6749 §3.2): a grant for tokens. The response
/// leaves only after the grant's events are committed.
#[utoipa::path(
    post,
    path = "/token",
    tag = tag::OAUTH,
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449 §4) for this request: binds what is issued to its key.")),
    responses(
        (status = 200, description = "Tokens (RFC 6749 §5.1), `Cache-Control: no-store`; with a proof, `token_type: DPoP` (and `DPoP-Nonce` when nonces are required).", body = TokenResponse),
        (status = 400, description = "RFC 6749 §5.2: `invalid_request`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, `invalid_target`; RFC 8628 §3.5: `authorization_pending`, `slow_down`, `access_denied`, `expired_token`; RFC 8693: `invalid_request` for a subject or actor token that is invalid, expired, revoked or not this client's, `invalid_target` for an unknown audience; RFC 9449: `invalid_dpop_proof`, `use_dpop_nonce` (with `DPoP-Nonce`).", body = ErrorBody),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate`; after too many failed authentications, with `Retry-After` too.", body = ErrorBody),
        (status = 429, description = "The password grant only: too many failed sign-ins for the username; `Retry-After` says when to try again.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`: the store did not answer.", body = ErrorBody),
    )
)]
pub async fn token(
    State(state): State<CommandState>,
    headers: HeaderMap,
    request: ClientRequest,
) -> Result<Response, OAuthError> {
    let ClientRequest {
        client,
        form,
        request_id,
        address,
    } = request;
    let state = &state;
    let grant_type = form.require("grant_type")?;
    let Some(grant_type) = GrantType::parse(grant_type) else {
        return Err(OAuthError::new(
            axum::http::StatusCode::BAD_REQUEST,
            writ_edge::ErrorCode::UnsupportedGrantType,
            "grant_type is not one Writ supports here",
        ));
    };
    if !client.settings.grant_types.contains(&grant_type) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client may not use the {} grant",
            grant_type.as_str()
        )));
    }
    let fapi2 = client.settings.fapi2(state.fapi2);
    // FAPI 2.0 §5.3.2.1: no resource owner password credentials grant.
    if fapi2 && grant_type == GrantType::Password {
        return Err(OAuthError::unauthorized_client(
            "FAPI 2.0 clients may not use the password grant",
        ));
    }
    let proof = writ_edge::dpop::header(&headers).map_err(Refused::at_token_endpoint)?;
    if proof.is_none() && (client.settings.dpop_bound_access_tokens || fapi2) {
        return Err(
            Refused::Invalid("this client's tokens must be DPoP-bound: send a DPoP proof")
                .at_token_endpoint(),
        );
    }
    let metadata = crate::metadata::client_metadata(&client, request_id);
    let proof = issue::DpopProof {
        header: proof,
        request_id: &metadata.request_id,
    };
    let grant = Grant {
        state,
        client: &client,
        form: &form,
        metadata: &metadata,
        proof: &proof,
    };
    let mut response = match grant_type {
        GrantType::ClientCredentials => client_credentials::grant(&grant).await,
        GrantType::RefreshToken => refresh::grant(&grant).await,
        GrantType::Password => password::grant(&grant, address.0).await,
        GrantType::AuthorizationCode => authorization_code::grant(&grant).await,
        GrantType::DeviceCode => device_code::grant(&grant).await,
        GrantType::TokenExchange => exchange::grant(&grant).await,
    }?;
    if proof.header.is_some() {
        state.dpop.next_nonce(&mut response);
    }
    Ok(response)
}
