//! Client authentication (RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post`, `private_key_jwt` (RFC 7523, client_assertion.rs)
//! for clients with registered keys, or `none` for public clients; exactly
//! one method per request.
//!
//! Failures are counted per (client id, client address) (R73, ADR 0011).
//! The count never refuses anyone: client secrets are 256 random bits
//! made by Writ, so guessing one is hopeless, and a refusal keyed on what
//! a stranger can send would let anyone lock a client out. Past the limit
//! a failure is answered as before, with `Retry-After` added. Public
//! clients have no secret to guess, so their failures are not counted.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use writ_domain::client::ClientSettings;

use crate::client_assertion::{Assertions, Refused, JWT_BEARER};
use crate::{Form, OAuthError, Throttle};
use writ_domain::client::AuthMethod;
use writ_infra::crypto::{constant_time_eq, sha256_hex};
use writ_store::memory::Fresh;
use writ_store::views::clients;
use writ_store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Basic,
    Post,
    None,
    PrivateKeyJwt,
}

impl Method {
    /// RFC 6749 §5.2 requires a challenge on every 401, naming a scheme the
    /// client may use; Basic is the one HTTP authentication scheme for
    /// client credentials (`client_secret_post` and `none` are not schemes).
    fn scheme(self) -> &'static str {
        "Basic"
    }

    /// The method's RFC 7591 name, as events record it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "client_secret_basic",
            Self::Post => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

struct Presented {
    method: Method,
    client_id: String,
    secret: Option<String>,
    assertion: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client_id: String,
    pub settings: Arc<ClientSettings>,
    pub method: Method,
    /// The store memory's freshness verdict the client was read under: the
    /// same request's token lookup may answer under it too (ADR 0010).
    pub checked: Option<Fresh>,
}

fn presented(headers: &HeaderMap, form: &Form) -> Result<Presented, OAuthError> {
    let authorization = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .collect::<Vec<_>>();
    if authorization.len() > 1 {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let form_id = form.get("client_id");
    let form_secret = form.get("client_secret");
    if form.get("client_assertion_type").is_some() || form.get("client_assertion").is_some() {
        if !authorization.is_empty() || form_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not a client assertion and a secret",
            ));
        }
        return asserted(form, form_id);
    }
    match authorization.first() {
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| OAuthError::invalid_client("malformed Basic credentials", "Basic"))?;
            let (client_id, secret) = writ_wire::credentials::basic(value)?;
            if form_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not Basic and client_secret together",
                ));
            }
            if form_id.is_some_and(|id| id != client_id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            Ok(Presented {
                method: Method::Basic,
                client_id,
                secret: Some(secret),
                assertion: None,
            })
        }
        None => {
            let client_id = form_id
                .ok_or_else(|| {
                    OAuthError::invalid_client("client authentication is required", "Basic")
                })?
                .to_owned();
            Ok(Presented {
                method: if form_secret.is_some() {
                    Method::Post
                } else {
                    Method::None
                },
                client_id,
                secret: form_secret.map(str::to_owned),
                assertion: None,
            })
        }
    }
}

/// RFC 7521 §4.2: the assertion names its client in `sub` (signed, and
/// checked once the client's keys are known); a `client_id` beside it must
/// agree.
fn asserted(form: &Form, form_id: Option<&str>) -> Result<Presented, OAuthError> {
    let refused = |why: &str| OAuthError::invalid_client(why, "Basic");
    if form.get("client_assertion_type") != Some(JWT_BEARER) {
        return Err(refused(
            "client_assertion_type must be jwt-bearer (RFC 7523)",
        ));
    }
    let assertion = form
        .get("client_assertion")
        .ok_or_else(|| refused("client_assertion is missing"))?;
    let sub = writ_wire::client_jwt::assertion_subject(assertion)
        .ok_or_else(|| refused("the client assertion names no client"))?;
    if form_id.is_some_and(|id| id != sub) {
        return Err(OAuthError::invalid_request(
            "client_id differs from the client assertion's",
        ));
    }
    Ok(Presented {
        method: Method::PrivateKeyJwt,
        client_id: sub,
        secret: None,
        assertion: Some(assertion.to_owned()),
    })
}

/// Where and how the request arrived, for a client assertion's `aud` and
/// the event that records it.
pub struct Endpoint<'a> {
    pub path: &'a str,
    pub request_id: &'a str,
}

/// Authenticates the client of a request. `allow_public` is false where
/// only confidential clients may call (introspection). `address` is the
/// client's address ([`crate::ClientAddress`]), which failures are
/// counted under.
#[allow(clippy::too_many_arguments)]
pub async fn authenticate(
    store: &Store,
    throttle: &Throttle,
    assertions: &Assertions,
    endpoint: Endpoint<'_>,
    address: Option<IpAddr>,
    headers: &HeaderMap,
    form: &Form,
    allow_public: bool,
) -> Result<AuthenticatedClient, OAuthError> {
    let presented = presented(headers, form)?;
    let scheme = presented.method.scheme();
    let clients::Found { client, checked } = clients::find_current(store, &presented.client_id)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?;
    let failure_key = || {
        let address = address.map_or_else(|| "-".to_owned(), |a| a.to_string());
        format!("{} {address}", presented.client_id)
    };
    let refuse = |why: &str| {
        let key = failure_key();
        let over_limit = throttle.check(&key);
        throttle.record_failure(&key);
        let error = OAuthError::invalid_client(why, scheme);
        Err(match over_limit {
            Err(wait) => error.retry_after(wait),
            Ok(()) => error,
        })
    };
    let Some(client) = client else {
        return refuse("client authentication failed");
    };
    let Some(settings) = client.settings.clone() else {
        return refuse("client authentication failed");
    };
    if !client.row.is_active() {
        return refuse("client authentication failed");
    }
    let private_key_jwt = settings.token_endpoint_auth_method == Some(AuthMethod::PrivateKeyJwt);
    if let Some(assertion) = &presented.assertion {
        if !private_key_jwt {
            return refuse("this client does not authenticate with private_key_jwt");
        }
        let accepted = assertions
            .accept(
                &settings,
                &presented.client_id,
                assertion,
                endpoint.path,
                endpoint.request_id,
            )
            .await;
        return match accepted {
            Ok(()) => Ok(AuthenticatedClient {
                client_id: presented.client_id,
                settings,
                method: Method::PrivateKeyJwt,
                checked,
            }),
            Err(Refused::Unavailable(why)) => Err(OAuthError::unavailable().because(why)),
            Err(Refused::Keys(why)) => refuse("the client's keys could not be read")
                .map_err(|e: OAuthError| e.because(why)),
            Err(Refused::Replayed) => refuse("this client assertion was used before"),
            Err(Refused::Invalid(why)) => refuse(why),
        };
    }
    if private_key_jwt {
        return refuse("this client authenticates with private_key_jwt");
    }
    match (&client.row.secret_hash, presented.secret) {
        (Some(stored), Some(secret)) => {
            let computed = sha256_hex(secret.as_bytes());
            if !constant_time_eq(computed.as_bytes(), stored.as_bytes()) {
                return refuse("client authentication failed");
            }
        }
        // R36: a confidential client without credentials is not public.
        (Some(_), None) => return refuse("client authentication failed"),
        // Not counted: a public client has no secret to guess.
        (None, Some(_)) => {
            return Err(OAuthError::invalid_client(
                "a public client has no secret",
                scheme,
            ))
        }
        // Only a public client goes without any credential.
        (None, None) if !settings.public => return refuse("client authentication failed"),
        (None, None) if !allow_public => {
            return Err(OAuthError::invalid_client(
                "public clients may not call this endpoint",
                scheme,
            ))
        }
        (None, None) => {}
    }
    Ok(AuthenticatedClient {
        client_id: presented.client_id,
        settings,
        method: presented.method,
        checked,
    })
}
