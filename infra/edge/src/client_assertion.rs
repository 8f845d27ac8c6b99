//! `private_key_jwt` (RFC 7523 §2.2 and §3, OpenID Connect Core §9): the
//! client signs a short-lived JWT with a key whose public half it
//! registered, and sends it as `client_assertion`. Only asymmetric
//! algorithms verify: `none` and HMAC (which a public key could be made to
//! key) never do. Each assertion is accepted once, in every process,
//! through its `ClientAssertion` stream.

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use writ_domain::client::ClientSettings;
use writ_domain::client_assertion::{AcceptAssertion, ClientAssertion, ClientAssertionError};
use writ_infra::client_keys::ClientKeys;
use writ_infra::crypto::sha256_hex;
use writ_store::executor::Stream;
use writ_store::{ExecuteError, Executor, Metadata};
pub use writ_wire::request_object::{names_audience, REQUEST_OBJECT_TYP};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The algorithms an assertion may be signed with, as discovery lists them.
pub const ALGORITHMS: &[&str] = &["ES256", "EdDSA", "PS256", "RS256"];

const MAX_ASSERTION_LEN: usize = 8 * 1024;
/// An assertion is for one request: one that claims to live longer is
/// refused, so its `jti` need not be remembered for long either.
const MAX_LIFETIME_SECS: i64 = 600;
const MAX_JTI_LEN: usize = 256;
/// How far ahead of Writ's clock an `nbf` may be.
const NBF_SKEW_SECS: i64 = 10;

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

fn algorithm(alg: Algorithm) -> Option<Algorithm> {
    matches!(
        alg,
        Algorithm::ES256 | Algorithm::EdDSA | Algorithm::PS256 | Algorithm::RS256
    )
    .then_some(alg)
}

fn keys_for<'a>(set: &'a Value, kid: Option<&str>, alg: Algorithm) -> Vec<&'a Value> {
    let alg_name = format!("{alg:?}");
    set.get("keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter(|key| {
                    kid.is_none_or(|kid| key.get("kid").and_then(Value::as_str) == Some(kid))
                })
                .filter(|key| {
                    key.get("alg")
                        .and_then(Value::as_str)
                        .is_none_or(|own| own == alg_name)
                })
                .filter(|key| {
                    key.get("use")
                        .and_then(Value::as_str)
                        .is_none_or(|u| u == "sig")
                })
                .collect()
        })
        .unwrap_or_default()
}

fn verified_claims(
    assertion: &str,
    keys: &[&Value],
    alg: Algorithm,
    required: &[&str],
) -> Option<Value> {
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims(required);
    validation.validate_aud = false;
    // `nbf` is checked by the caller, with the skew FAPI 2.0 asks for.
    validation.validate_nbf = false;
    validation.leeway = 0;
    keys.iter().find_map(|key| {
        let jwk = Jwk::deserialize(*key).ok()?;
        let decoding = DecodingKey::from_jwk(&jwk).ok()?;
        jsonwebtoken::decode::<Value>(assertion, &decoding, &validation)
            .ok()
            .map(|data| data.claims)
    })
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

/// `typ` of a client assertion as draft-ietf-oauth-rfc7523bis names it.
const ASSERTION_TYP: &str = "client-authentication+jwt";

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
    if jwt.len() > MAX_ASSERTION_LEN || jwt.split('.').count() != 3 {
        return Err(Refused::Invalid("not a JWT"));
    }
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|_| Refused::Invalid("the JWT's header is unreadable"))?;
    let alg =
        algorithm(header.alg).ok_or(Refused::Invalid("the JWT's algorithm is not accepted"))?;
    let kid = header.kid.as_deref();
    let typ = header.typ.as_deref().map(|typ| {
        let typ = typ.to_ascii_lowercase();
        typ.strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(typ)
    });
    let mut claims = None;
    if let Some(jwks) = &settings.jwks {
        claims = verified_claims(jwt, &keys_for(jwks, kid, alg), alg, required);
    } else if let Some(uri) = &settings.jwks_uri {
        // Only a fetched set can have changed since it was cached.
        for stale_ok in [true, false] {
            let set = keys
                .fetched(uri, stale_ok)
                .await
                .map_err(|e| Refused::Keys(e.to_string()))?;
            claims = verified_claims(jwt, &keys_for(&set, kid, alg), alg, required);
            if claims.is_some() {
                break;
            }
        }
    }
    let claims = claims.ok_or(Refused::Invalid(
        "the JWT does not verify under the client's keys",
    ))?;
    // FAPI 2.0 §5.3.2.1: clocks differ; up to ten seconds ahead is fine.
    if claims.get("nbf").is_some_and(|nbf| {
        nbf.as_i64()
            .is_none_or(|nbf| nbf > Utc::now().timestamp().saturating_add(NBF_SKEW_SECS))
    }) {
        return Err(Refused::Invalid("the JWT is not valid yet (nbf)"));
    }
    Ok(SignedByClient {
        claims,
        alg: format!("{alg:?}"),
        kid: kid.map(str::to_owned),
        typ,
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
        // RFC 8725 §3.11, RFC 9101 §10.8: a request object went through
        // a browser; it must never pass for the client's credential.
        if !matches!(typ.as_deref(), None | Some("jwt" | ASSERTION_TYP))
            || claims.get("response_type").is_some()
        {
            return Err(Refused::Invalid(
                "a request object or other typed JWT is not a client assertion",
            ));
        }
        let fapi2 = settings.fapi2(self.fapi2);
        if !crate::fapi2::admits(&alg, fapi2) {
            return Err(Refused::Invalid(
                "FAPI 2.0 admits assertions signed with ES256, EdDSA or PS256 only",
            ));
        }
        self.check_claims(&claims, client_id, path, fapi2)?;
        let jti = claims["jti"].as_str().unwrap_or_default();
        let expires_at = claims["exp"]
            .as_i64()
            .and_then(|exp| DateTime::<Utc>::from_timestamp(exp, 0))
            .ok_or(Refused::Invalid("the client assertion's exp is unreadable"))?;
        if (expires_at - self.executor.services().now()).num_seconds() > MAX_LIFETIME_SECS {
            return Err(Refused::Invalid(
                "the client assertion lives longer than ten minutes",
            ));
        }
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

    fn check_claims(
        &self,
        claims: &Value,
        client_id: &str,
        path: &str,
        fapi2: bool,
    ) -> Result<(), Refused> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("iss") != Some(client_id) || text("sub") != Some(client_id) {
            return Err(Refused::Invalid(
                "the client assertion's iss and sub must be the client_id",
            ));
        }
        let issuer = self.issuer.trim_end_matches('/');
        let endpoint = format!("{}{path}", self.public_base.trim_end_matches('/'));
        let issuer_endpoint = format!("{issuer}{path}");
        let acceptable = |aud: &str| aud == issuer || aud == endpoint || aud == issuer_endpoint;
        // FAPI 2.0 §5.3.2.1: the issuer only, as a string, so that an
        // assertion made for another server's endpoint never passes.
        if fapi2 && claims.get("aud").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(Refused::Invalid(
                "a FAPI 2.0 client's assertion must name the issuer alone as aud",
            ));
        }
        if !names_audience(claims, acceptable) {
            return Err(Refused::Invalid(
                "the client assertion's aud must be the issuer or this endpoint",
            ));
        }
        match text("jti") {
            Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => Ok(()),
            _ => Err(Refused::Invalid("the client assertion needs a jti")),
        }
    }
}
