//! `private_key_jwt` (RFC 7523 §2.2 and §3, OpenID Connect Core §9): the
//! client signs a short-lived JWT with a key whose public half it
//! registered, and sends it as `client_assertion`. Only asymmetric
//! algorithms verify: `none` and HMAC (which a public key could be made to
//! key) never do. Each assertion is accepted once, in every process,
//! through its `ClientAssertion` stream.

use chrono::{DateTime, Utc};
use serde_json::Value;
use writ_domain::client::ClientSettings;
use writ_domain::client_assertion::{AcceptAssertion, ClientAssertion, ClientAssertionError};
use writ_infra::client_keys::ClientKeys;
use writ_infra::crypto::sha256_hex;
use writ_store::executor::Stream;
use writ_store::{ExecuteError, Executor, Metadata};
pub use writ_wire::client_jwt::ALGORITHMS;
use writ_wire::client_jwt::{self, check_assertion, not_yet_valid, verified_claims, Audience};
pub use writ_wire::request_object::{names_audience, REQUEST_OBJECT_TYP};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What verifying assertions needs besides the client's row.
#[derive(Clone)]
pub struct Assertions {
    pub executor: Executor,
    /// Always an acceptable `aud` (RFC 7523bis, and what openid-client sends).
    pub issuer: String,
    /// This API's public base URL: the called endpoint's URL is an
    /// acceptable `aud` too (OpenID Connect Core §9 names the token endpoint).
    pub public_base: String,
    pub keys: ClientKeys,
    /// FAPI 2.0 for every client: `aud` must be the issuer, as a string.
    pub fapi2: bool,
}

/// Why an assertion was not accepted; every one is `invalid_client`.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Invalid(&'static str),
    Replayed,
    /// The client's `jwks_uri` could not be read: the client's fault.
    Keys(String),
    /// The store could not record the assertion: nobody's fault, 503.
    Unavailable(String),
}

/// A JWT a client signed with one of its registered keys.
pub struct SignedByClient {
    pub claims: Value,
    pub alg: String,
    pub kid: Option<String>,
    /// The header's `typ`, lower-cased and without `application/` (RFC
    /// 7515 §4.1.9), so one kind of client JWT is never taken for another.
    pub typ: Option<String>,
}

/// Verifies `jwt` under the client's keys (`jwks`, or its `jwks_uri`,
/// fetched again once when no cached key verifies), with an asymmetric
/// algorithm only, `exp` checked without leeway and `nbf` (when present)
/// allowed ten seconds ahead, and the `required` claims present. Client assertions and
/// request objects (RFC 9101) are both checked here.
pub async fn signed_by_client(
    keys: &ClientKeys,
    settings: &ClientSettings,
    jwt: &str,
    required: &[&str],
) -> Result<SignedByClient, Refused> {
    let header = client_jwt::header(jwt).map_err(Refused::Invalid)?;
    let mut claims = None;
    if let Some(jwks) = &settings.jwks {
        claims = verified_claims(jwt, jwks, &header, required);
    } else if let Some(uri) = &settings.jwks_uri {
        // Only a fetched set can have changed since it was cached.
        for stale_ok in [true, false] {
            let set = keys
                .fetched(uri, stale_ok)
                .await
                .map_err(|e| Refused::Keys(e.to_string()))?;
            claims = verified_claims(jwt, &set, &header, required);
            if claims.is_some() {
                break;
            }
        }
    }
    let claims = claims.ok_or(Refused::Invalid(
        "the JWT does not verify under the client's keys",
    ))?;
    if not_yet_valid(&claims, Utc::now().timestamp()) {
        return Err(Refused::Invalid("the JWT is not valid yet (nbf)"));
    }
    Ok(SignedByClient {
        claims,
        alg: format!("{:?}", header.alg),
        kid: header.kid,
        typ: header.typ,
    })
}

impl Assertions {
    /// Verifies `assertion` for `client_id` at the endpoint `path`, then
    /// records its acceptance; a second use anywhere is [`Refused::Replayed`].
    pub async fn accept(
        &self,
        settings: &ClientSettings,
        client_id: &str,
        assertion: &str,
        path: &str,
        request_id: &str,
    ) -> Result<(), Refused> {
        let SignedByClient {
            claims,
            alg,
            kid,
            typ,
        } = signed_by_client(
            &self.keys,
            settings,
            assertion,
            &["exp", "iss", "sub", "aud"],
        )
        .await?;
        let fapi2 = settings.fapi2(self.fapi2);
        if !crate::fapi2::admits(&alg, fapi2) {
            return Err(Refused::Invalid(
                "FAPI 2.0 admits assertions signed with ES256, EdDSA or PS256 only",
            ));
        }
        let now = self.executor.services().now();
        let audience = Audience {
            issuer: &self.issuer,
            public_base: &self.public_base,
            path,
            fapi2,
        };
        check_assertion(
            typ.as_deref(),
            &claims,
            client_id,
            &audience,
            now.timestamp(),
        )
        .map_err(Refused::Invalid)?;
        let jti = claims["jti"].as_str().unwrap_or_default();
        let expires_at = claims["exp"]
            .as_i64()
            .and_then(|exp| DateTime::<Utc>::from_timestamp(exp, 0))
            .ok_or(Refused::Invalid("the client assertion's exp is unreadable"))?;
        let command = AcceptAssertion {
            client_id: client_id.to_owned(),
            jti: jti.to_owned(),
            alg,
            kid,
            expires_at,
        };
        let metadata = Metadata::client(client_id, request_id, Some("private_key_jwt"));
        let stream = ClientAssertion::stream_id(client_id, jti, sha256_hex);
        match self
            .executor
            .execute_with::<ClientAssertion>(&stream, command, &metadata, Vec::new(), Stream::New)
            .await
        {
            Ok(_) => Ok(()),
            Err(
                ExecuteError::Rejected(ClientAssertionError::Replayed) | ExecuteError::Conflict,
            ) => Err(Refused::Replayed),
            Err(ExecuteError::Rejected(ClientAssertionError::Expired)) => {
                Err(Refused::Invalid("the client assertion has expired"))
            }
            Err(e) => Err(Refused::Unavailable(e.to_string())),
        }
    }
}
