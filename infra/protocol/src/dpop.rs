//! DPoP proofs (RFC 9449 §4): a JWT the client signs, for one request,
//! with the key its tokens are bound to. Writ checks them at its token,
//! PAR and userinfo endpoints and `writ-resource-server` at the APIs, with
//! this one function, so the two never disagree on what a proof is.
//! Whether a `jti` was seen before, and which nonces are current, is each
//! caller's to remember: this crate has no state.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `typ` of every proof (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";

/// What Writ and its resource servers verify, as discovery lists them.
pub const ALGORITHMS: &[&str] = &["ES256", "EdDSA", "PS256", "RS256"];

const MAX_PROOF_LEN: usize = 8 * 1024;
const MAX_JTI_LEN: usize = 256;
/// JWK members that hold a private or symmetric key (RFC 7518 §6): a proof
/// that carries one has leaked its key, and is refused (§4.3 item 7).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The request a proof must have been made for.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub method: &'a str,
    /// The endpoint's public URL; query and fragment never count.
    pub url: &'a str,
    /// The access token the request presents, whose hash `ath` must be.
    pub access_token: Option<&'a str>,
    /// Now, in seconds since the epoch.
    pub now: i64,
    /// How old a proof's `iat` may be.
    pub max_age_secs: i64,
    /// How far ahead of `now` a proof's `iat` may be: clocks differ.
    pub max_skew_secs: i64,
}

/// A proof that passed every check that needs no memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The key's RFC 7638 SHA-256 thumbprint: `cnf.jkt` of its tokens.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    /// The server nonce the proof carries, for the caller to check.
    pub nonce: Option<String>,
    /// The JWS algorithm, for profiles that admit fewer (FAPI 2.0 §5.4.1).
    pub alg: &'static str,
}

/// Why a proof is refused; the text is for the client's developer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidProof(pub &'static str);

impl std::fmt::Display for InvalidProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidProof {}

fn algorithm(alg: &str) -> Option<(Algorithm, &'static str)> {
    ALGORITHMS
        .iter()
        .find(|known| **known == alg)
        .and_then(|known| Some((known.parse().ok()?, *known)))
}

/// Checks `proof` against RFC 9449 §4.3 for the `expected` request:
/// `typ`, an asymmetric algorithm, a public `jwk` that verifies the
/// signature, `jti`, `htm`, `htu` (query and fragment ignored), `iat`
/// within the window and, with an access token, `ath`.
pub fn verify(proof: &str, expected: &Expected<'_>) -> Result<Proof, InvalidProof> {
    let invalid = |why| Err(InvalidProof(why));
    if proof.len() > MAX_PROOF_LEN || proof.split('.').count() != 3 {
        return invalid("the DPoP proof is not a JWT");
    }
    let header: Value = proof
        .split('.')
        .next()
        .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(InvalidProof("the DPoP proof's header is unreadable"))?;
    let text = |name: &str| header.get(name).and_then(Value::as_str);
    if !text("typ").is_some_and(|typ| typ.eq_ignore_ascii_case(PROOF_TYP)) {
        return invalid("the DPoP proof's typ must be dpop+jwt");
    }
    let Some((alg, alg_name)) = text("alg").and_then(algorithm) else {
        return invalid("the DPoP proof's alg is not an accepted asymmetric algorithm");
    };
    let Some(jwk) = header.get("jwk").filter(|jwk| jwk.is_object()) else {
        return invalid("the DPoP proof's header carries no jwk");
    };
    if PRIVATE_MEMBERS
        .iter()
        .any(|member| jwk.get(member).is_some())
    {
        return invalid("the DPoP proof's jwk holds a private key");
    }
    let jkt = thumbprint(jwk).ok_or(InvalidProof("the DPoP proof's jwk is not a public key"))?;
    let key = Jwk::deserialize(jwk)
        .ok()
        .and_then(|jwk| DecodingKey::from_jwk(&jwk).ok())
        .ok_or(InvalidProof("the DPoP proof's jwk is not a public key"))?;
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(proof, &key, &validation)
        .map_err(|_| InvalidProof("the DPoP proof's signature does not verify under its jwk"))?
        .claims;
    let claim = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = match claim("jti") {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => jti,
        _ => return invalid("the DPoP proof needs a jti"),
    };
    if claim("htm") != Some(expected.method) {
        return invalid("the DPoP proof's htm is not this request's method");
    }
    if !claim("htu").is_some_and(|htu| same_target(htu, expected.url)) {
        return invalid("the DPoP proof's htu is not this endpoint's URL");
    }
    // RFC 7519 §2: a NumericDate may carry a fraction.
    let Some(iat) = claims.get("iat").and_then(|iat| {
        iat.as_i64().or_else(|| {
            iat.as_f64()
                .filter(|t| t.abs() < 1e15)
                .map(|t| t.floor() as i64)
        })
    }) else {
        return invalid("the DPoP proof needs an iat");
    };
    let earliest = expected.now.saturating_sub(expected.max_age_secs);
    let latest = expected.now.saturating_add(expected.max_skew_secs);
    if iat < earliest || iat > latest {
        return invalid("the DPoP proof's iat is outside the accepted window");
    }
    if let Some(token) = expected.access_token {
        if claim("ath") != Some(access_token_hash(token).as_str()) {
            return invalid("the DPoP proof's ath is not the hash of the access token");
        }
    }
    Ok(Proof {
        jkt,
        jti: jti.to_owned(),
        iat,
        nonce: claim("nonce").map(str::to_owned),
        alg: alg_name,
    })
}

/// `ath` (RFC 9449 §4.2): base64url of the SHA-256 of the token's ASCII.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK: its required members,
/// in lexicographic order, without whitespace.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let member = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .and_then(|value| serde_json::to_string(value).ok())
    };
    let canonical = match jwk.get("kty").and_then(Value::as_str)? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        "OKP" => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            member("crv")?,
            member("x")?
        ),
        "RSA" => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            member("e")?,
            member("n")?
        ),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// Whether `htu` names the same resource as `url`, compared after RFC
/// 3986 §6.2.2–6.2.3 normalisation (case of scheme and host, default
/// port, empty path) and without query or fragment (RFC 9449 §4.3).
fn same_target(htu: &str, url: &str) -> bool {
    let normalised = |text: &str| {
        let mut parsed = url::Url::parse(text).ok()?;
        parsed.set_query(None);
        parsed.set_fragment(None);
        Some(parsed.to_string())
    };
    matches!((normalised(htu), normalised(url)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
#[path = "dpop_tests.rs"]
mod tests;
