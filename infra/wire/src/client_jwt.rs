//! JWTs a client signs: `private_key_jwt` assertions (RFC 7523 §2.2 and
//! §3, OpenID Connect Core §9) and request objects (RFC 9101). Only
//! asymmetric algorithms verify: `none` and HMAC (which a public key could
//! be made to key) never do. Reading and verifying them needs the client's
//! JWKS and nothing else; fetching a `jwks_uri` and remembering each
//! assertion's `jti` are the edge's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::request_object::names_audience;

/// The algorithms a client JWT may be signed with, as discovery lists them.
pub const ALGORITHMS: &[&str] = &["ES256", "EdDSA", "PS256", "RS256"];
/// `typ` of a client assertion as draft-ietf-oauth-rfc7523bis names it.
pub const ASSERTION_TYP: &str = "client-authentication+jwt";

const MAX_LEN: usize = 8 * 1024;
/// An assertion is for one request: one that claims to live longer is
/// refused, so its `jti` need not be remembered for long either.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 600;
const MAX_JTI_LEN: usize = 256;
/// How far ahead of Writ's clock an `nbf` may be (FAPI 2.0 §5.3.2.1).
const NBF_SKEW_SECS: i64 = 10;

/// A client JWT's header, read before any key is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// Lower-cased and without `application/` (RFC 7515 §4.1.9), so one
    /// kind of client JWT is never taken for another.
    pub typ: Option<String>,
}

/// The header of `jwt`, if it is a JWT of acceptable size and algorithm.
pub fn header(jwt: &str) -> Result<Header, &'static str> {
    if jwt.len() > MAX_LEN || jwt.split('.').count() != 3 {
        return Err("not a JWT");
    }
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| "the JWT's header is unreadable")?;
    let alg = header.alg;
    if !matches!(
        alg,
        Algorithm::ES256 | Algorithm::EdDSA | Algorithm::PS256 | Algorithm::RS256
    ) {
        return Err("the JWT's algorithm is not accepted");
    }
    let typ = header.typ.as_deref().map(|typ| {
        let typ = typ.to_ascii_lowercase();
        typ.strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(typ)
    });
    Ok(Header {
        alg,
        kid: header.kid,
        typ,
    })
}

/// The keys of a JWKS that may have signed under `header`: its `kid`
/// when named, an `alg` that agrees when stated, `use` sig when stated.
fn keys_for<'a>(set: &'a Value, header: &Header) -> Vec<&'a Value> {
    let alg_name = format!("{:?}", header.alg);
    let kid = header.kid.as_deref();
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

/// The claims of `jwt` if a key of `jwks` verifies it under `header`,
/// with `exp` checked without leeway and the `required` claims present.
/// `nbf` is [`not_yet_valid`]'s, with the skew FAPI 2.0 asks for.
pub fn verified_claims(
    jwt: &str,
    jwks: &Value,
    header: &Header,
    required: &[&str],
) -> Option<Value> {
    let mut validation = Validation::new(header.alg);
    validation.set_required_spec_claims(required);
    validation.validate_aud = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    keys_for(jwks, header).into_iter().find_map(|key| {
        let jwk = Jwk::deserialize(key).ok()?;
        let decoding = DecodingKey::from_jwk(&jwk).ok()?;
        jsonwebtoken::decode::<Value>(jwt, &decoding, &validation)
            .ok()
            .map(|data| data.claims)
    })
}

/// Whether verified `claims` carry an `nbf` later than `now` (Unix
/// seconds) by more than the skew, or one that is not a number.
pub fn not_yet_valid(claims: &Value, now: i64) -> bool {
    claims.get("nbf").is_some_and(|nbf| {
        nbf.as_i64()
            .is_none_or(|nbf| nbf > now.saturating_add(NBF_SKEW_SECS))
    })
}

/// RFC 7521 §4.2: the client an assertion names in `sub`, read before
/// its signature is checked, only to find whose keys to check it with.
pub fn assertion_subject(assertion: &str) -> Option<String> {
    assertion
        .split('.')
        .nth(1)
        .and_then(|claims| URL_SAFE_NO_PAD.decode(claims).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|claims| claims.get("sub")?.as_str().map(str::to_owned))
        .filter(|sub| !sub.is_empty())
}

/// Where an assertion was presented, for its `aud`.
pub struct Audience<'a> {
    pub issuer: &'a str,
    /// The API's public base URL; the called endpoint's URL is acceptable.
    pub public_base: &'a str,
    pub path: &'a str,
    /// FAPI 2.0: the issuer alone, as a string.
    pub fapi2: bool,
}

/// The checks on a verified assertion's header and claims for
/// `client_id`: not a request object or another typed JWT, `iss` and
/// `sub` the client, `aud` this server, a `jti` of bounded length, and an
/// `exp` at most ten minutes after `now` (Unix seconds).
pub fn check_assertion(
    typ: Option<&str>,
    claims: &Value,
    client_id: &str,
    audience: &Audience<'_>,
    now: i64,
) -> Result<(), &'static str> {
    // RFC 8725 §3.11, RFC 9101 §10.8: a request object went through a
    // browser; it must never pass for the client's credential.
    if !matches!(typ, None | Some("jwt" | ASSERTION_TYP)) || claims.get("response_type").is_some() {
        return Err("a request object or other typed JWT is not a client assertion");
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(client_id) || text("sub") != Some(client_id) {
        return Err("the client assertion's iss and sub must be the client_id");
    }
    let issuer = audience.issuer.trim_end_matches('/');
    let endpoint = format!(
        "{}{}",
        audience.public_base.trim_end_matches('/'),
        audience.path
    );
    let issuer_endpoint = format!("{issuer}{}", audience.path);
    let acceptable = |aud: &str| aud == issuer || aud == endpoint || aud == issuer_endpoint;
    // FAPI 2.0 §5.3.2.1: the issuer only, as a string, so that an
    // assertion made for another server's endpoint never passes.
    if audience.fapi2 && text("aud") != Some(audience.issuer) {
        return Err("a FAPI 2.0 client's assertion must name the issuer alone as aud");
    }
    if !names_audience(claims, acceptable) {
        return Err("the client assertion's aud must be the issuer or this endpoint");
    }
    if !matches!(text("jti"), Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN) {
        return Err("the client assertion needs a jti");
    }
    match claims["exp"].as_i64() {
        None => Err("the client assertion's exp is unreadable"),
        Some(exp) if exp.saturating_sub(now) > MAX_ASSERTION_LIFETIME_SECS => {
            Err("the client assertion lives longer than ten minutes")
        }
        Some(_) => Ok(()),
    }
}
