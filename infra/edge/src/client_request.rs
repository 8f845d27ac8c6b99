//! The extractor for endpoints a client calls with its credentials and a
//! form body (`/token`, `/par`, `/revoke`, `/introspect`, and
//! `/revocations` through its header-only variant): the
//! strict form is read, the client authenticated (RFC 6749 §2.3) and the
//! request's id kept for the events it causes. A handler then reads like
//! `token(State(state), request: ClientRequest) -> Result<Response, OAuthError>`.

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use writ_store::Store;

use crate::client_assertion::Assertions;
use crate::client_auth::{Endpoint, Method};
use crate::{authenticate, form, AuthenticatedClient, ClientAddress, Form, OAuthError, Throttle};

/// What client authentication needs from a router's state.
#[derive(Clone)]
pub struct ClientAuthenticator {
    pub store: Store,
    pub throttle: Throttle,
    pub assertions: Assertions,
    /// FAPI 2.0 for every client: only `private_key_jwt` authenticates.
    pub fapi2: bool,
}

impl ClientAuthenticator {
    /// RFC 6749 §2.3 for one request, counted against the throttle under
    /// the client's address; `allow_public` admits public clients
    /// (`none`).
    async fn authenticate(
        &self,
        endpoint: Endpoint<'_>,
        address: &ClientAddress,
        headers: &HeaderMap,
        form: &Form,
        allow_public: bool,
    ) -> Result<AuthenticatedClient, OAuthError> {
        authenticate(
            &self.store,
            &self.throttle,
            &self.assertions,
            endpoint,
            address.0,
            headers,
            form,
            allow_public,
        )
        .await
    }
}

/// An authenticated client's request. `PUBLIC` says whether a public
/// client (RFC 6749 §2.1, no secret) may call the endpoint at all.
pub struct ClientRequest<const PUBLIC: bool = true> {
    pub client: AuthenticatedClient,
    pub form: Form,
    /// The `x-request-id` the edge set, for the events' metadata.
    pub request_id: String,
    pub address: ClientAddress,
}

/// For endpoints only confidential clients may call (RFC 7662 §2.1).
pub type ConfidentialClientRequest = ClientRequest<false>;

impl<S, const PUBLIC: bool> FromRequest<S> for ClientRequest<PUBLIC>
where
    ClientAuthenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = OAuthError;

    async fn from_request(request: Request, state: &S) -> Result<Self, OAuthError> {
        let (mut parts, body) = request.into_parts();
        let Ok(address) = ClientAddress::from_request_parts(&mut parts, state).await;
        let form = form::read(&parts.headers, body).await?;
        let request_id = request_id(&parts.headers);
        let endpoint = Endpoint {
            path: parts.uri.path(),
            request_id: &request_id,
        };
        let authenticator = ClientAuthenticator::from_ref(state);
        let client = authenticator
            .authenticate(endpoint, &address, &parts.headers, &form, PUBLIC)
            .await?;
        // FAPI 2.0 §5.3.2.1: clients authenticate with private_key_jwt (or
        // mTLS, which Writ does not offer). Introspection (`!PUBLIC`) is
        // for resource servers, not the profile's clients, and the
        // revocation feed is Writ's own channel: both keep their methods
        // for clients not held to the profile themselves.
        let held = if PUBLIC {
            client.settings.fapi2(authenticator.fapi2)
        } else {
            client.settings.fapi2_security_profile
        };
        if held && client.method != Method::PrivateKeyJwt {
            return Err(OAuthError::invalid_client(
                "FAPI 2.0 admits private_key_jwt client authentication only",
                "Basic",
            ));
        }
        Ok(Self {
            client,
            form,
            request_id,
            address,
        })
    }
}

/// A confidential client authenticated by its `Authorization` header
/// alone, for endpoints without a body (the revocation feed's GET).
pub struct HeaderAuthenticatedClient {
    pub client: AuthenticatedClient,
    pub address: ClientAddress,
}

impl<S> FromRequestParts<S> for HeaderAuthenticatedClient
where
    ClientAuthenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, OAuthError> {
        let Ok(address) = ClientAddress::from_request_parts(parts, state).await;
        let request_id = request_id(&parts.headers);
        let endpoint = Endpoint {
            path: parts.uri.path(),
            request_id: &request_id,
        };
        let client = ClientAuthenticator::from_ref(state)
            .authenticate(endpoint, &address, &parts.headers, &Form::default(), false)
            .await?;
        Ok(Self { client, address })
    }
}

/// The request id the edge's `x-request-id` layer set; empty without one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
