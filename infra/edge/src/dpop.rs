//! DPoP (RFC 9449) at Writ's own endpoints: the token endpoint and PAR,
//! where a proof binds what is issued to its key, and userinfo, where it
//! proves possession of a bound token's key. A proof is checked by
//! `writ_protocol::dpop`, then accepted once in every process through its
//! `DpopProof` stream. Server nonces (§8) are stateless: an HMAC of the
//! current period under a key derived from the key file, so every process
//! of one deployment issues and accepts the same ones.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, StatusCode};
use chrono::{DateTime, Utc};
use writ_domain::dpop_proof::{AcceptProof, DpopProof, DpopProofError};
use writ_infra::crypto::{constant_time_eq, hmac_hex, sha256_hex, Key, KEY_LEN};
use writ_infra::keys::KeyRing;
use writ_protocol::dpop::{self, Expected, Proof};
use writ_store::executor::Stream;
use writ_store::{ExecuteError, Executor, Metadata};

use crate::{ErrorCode, OAuthError};

/// What a proof may be signed with, as discovery lists them.
pub use writ_protocol::dpop::ALGORITHMS;

pub const HEADER: HeaderName = HeaderName::from_static("dpop");
pub const NONCE_HEADER: HeaderName = HeaderName::from_static("dpop-nonce");

/// How far ahead of Writ's clock a proof's `iat` may be: clients' clocks
/// differ a little (FAPI 2.0 §5.3.2.1 asks for 10 seconds), and a proof
/// from further ahead is suspect.
const MAX_SKEW_SECS: i64 = 10;

/// Nonces of the current period and the one before are accepted, so a
/// nonce handed out just before a period ends still works once.
#[derive(Clone)]
pub struct Nonces {
    key: Key,
    period_secs: i64,
}

impl Nonces {
    pub fn new(key_ring: &KeyRing, period: Duration) -> Self {
        let derived = hmac_hex(&key_ring.key_encryption, "writ dpop nonce v1");
        let mut key = [0u8; KEY_LEN];
        // An HMAC-SHA-256 is exactly a key's length in hex.
        let _ = hex::decode_to_slice(&derived, &mut key);
        Self {
            key: Key(key),
            period_secs: i64::try_from(period.as_secs()).unwrap_or(i64::MAX).max(1),
        }
    }

    fn for_period(&self, period: i64) -> String {
        let mac = hmac_hex(&self.key, &period.to_string());
        format!("{period}.{}", &mac[..32])
    }

    /// The nonce a client should put in its next proof.
    pub fn current(&self, now: i64) -> String {
        self.for_period(now / self.period_secs)
    }

    pub fn is_fresh(&self, nonce: &str, now: i64) -> bool {
        let current = now / self.period_secs;
        let Some(period) = nonce
            .split_once('.')
            .and_then(|(period, _)| period.parse::<i64>().ok())
        else {
            return false;
        };
        (period == current || period == current - 1)
            && constant_time_eq(self.for_period(period).as_bytes(), nonce.as_bytes())
    }
}

/// What checking proofs needs, in both API contexts.
#[derive(Clone)]
pub struct DpopSettings {
    pub executor: Executor,
    /// This API's public base URL: each endpoint's `htu`.
    pub public_base: String,
    /// How old a proof's `iat` may be.
    pub proof_max_age: Duration,
    /// Set when every proof must carry a server nonce.
    pub nonces: Option<Nonces>,
}

/// Why a proof was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Invalid(&'static str),
    /// A good proof by another key than the one the token, code or
    /// refresh token is bound to, or the `dpop_jkt` beside it names.
    WrongKey,
    /// The proof lacks a current nonce; the client retries with this one.
    UseNonce(String),
    Unavailable(String),
}

impl Refused {
    /// As the token and PAR endpoints answer (RFC 9449 §5, §8): 400.
    pub fn at_token_endpoint(self) -> OAuthError {
        match self {
            Self::WrongKey => OAuthError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidDpopProof,
                WRONG_KEY,
            ),
            Self::Invalid(why) => {
                OAuthError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidDpopProof, why)
            }
            Self::UseNonce(nonce) => OAuthError {
                dpop_nonce: Some(nonce),
                ..OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::UseDpopNonce,
                    "the DPoP proof must carry the server's nonce",
                )
            },
            Self::Unavailable(cause) => OAuthError::unavailable().because(cause),
        }
    }

    /// As a protected resource answers (RFC 9449 §7.1, §9): 401 with a
    /// `DPoP` challenge.
    pub fn at_resource(self) -> OAuthError {
        match self {
            Self::WrongKey => challenge(ErrorCode::InvalidDpopProof, WRONG_KEY),
            Self::Invalid(why) => challenge(ErrorCode::InvalidDpopProof, why),
            Self::UseNonce(nonce) => OAuthError {
                dpop_nonce: Some(nonce),
                ..challenge(
                    ErrorCode::UseDpopNonce,
                    "the DPoP proof must carry the server's nonce",
                )
            },
            Self::Unavailable(cause) => OAuthError::unavailable().because(cause),
        }
    }
}

const WRONG_KEY: &str = "the DPoP proof is not signed by the key the token or dpop_jkt names";

/// RFC 9449 §7.1: a 401 whose `WWW-Authenticate: DPoP` names the error
/// and the algorithms a proof may use.
pub fn challenge(error: ErrorCode, description: &str) -> OAuthError {
    OAuthError {
        www_authenticate: Some(format!(
            "DPoP realm=\"{}\", error=\"{}\", algs=\"{}\"",
            crate::bearer::REALM,
            error.as_str(),
            dpop::ALGORITHMS.join(" ")
        )),
        ..OAuthError::new(StatusCode::UNAUTHORIZED, error, description)
    }
}

/// The request a proof is checked for.
pub struct ProofFor<'a> {
    pub method: &'a str,
    /// The endpoint's path under the API's public base.
    pub path: &'a str,
    /// At a protected resource, the token presented (checked as `ath`).
    pub access_token: Option<&'a str>,
    /// The key the proof must be signed with: a bound token's, or the
    /// `dpop_jkt` a push names.
    pub bound_to: Option<&'a str>,
    pub client_id: &'a str,
    pub request_id: &'a str,
    /// FAPI 2.0 applies: fewer algorithms.
    pub fapi2: bool,
}

/// The request's one `DPoP` header, if it sent one; two are refused
/// (RFC 9449 §4.3 item 1).
pub fn header(headers: &HeaderMap) -> Result<Option<&str>, Refused> {
    let mut values = headers.get_all(HEADER).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value
            .to_str()
            .map(Some)
            .map_err(|_| Refused::Invalid("the DPoP header is not text")),
        (Some(_), Some(_)) => Err(Refused::Invalid("send one DPoP header, not several")),
    }
}

impl DpopSettings {
    /// RFC 9449 §8.2: when nonces are required, a successful answer to a
    /// DPoP request carries the one to use next, so a client need not
    /// fail once per period to learn it.
    pub fn next_nonce(&self, response: &mut axum::response::Response) {
        let Some(nonces) = &self.nonces else {
            return;
        };
        let now = self.executor.services().now().timestamp();
        if let Ok(value) = axum::http::HeaderValue::from_str(&nonces.current(now)) {
            response.headers_mut().insert(NONCE_HEADER, value);
        }
    }

    /// Checks `proof` for `request` and records it as used; a second use
    /// anywhere, or a missing or stale nonce when nonces are required, is
    /// refused.
    pub async fn accept(&self, proof: &str, request: &ProofFor<'_>) -> Result<Proof, Refused> {
        let now = self.executor.services().now();
        let url = format!("{}{}", self.public_base.trim_end_matches('/'), request.path);
        let max_age_secs = i64::try_from(self.proof_max_age.as_secs()).unwrap_or(i64::MAX);
        let expected = Expected {
            method: request.method,
            url: &url,
            access_token: request.access_token,
            now: now.timestamp(),
            max_age_secs,
            max_skew_secs: MAX_SKEW_SECS,
        };
        let proof = dpop::verify(proof, &expected).map_err(|e| Refused::Invalid(e.0))?;
        if !crate::fapi2::admits(proof.alg, request.fapi2) {
            return Err(Refused::Invalid(
                "FAPI 2.0 admits DPoP proofs signed with ES256, EdDSA or PS256 only",
            ));
        }
        if request.bound_to.is_some_and(|bound| bound != proof.jkt) {
            return Err(Refused::WrongKey);
        }
        if let Some(nonces) = &self.nonces {
            let fresh = proof
                .nonce
                .as_deref()
                .is_some_and(|nonce| nonces.is_fresh(nonce, now.timestamp()));
            if !fresh {
                return Err(Refused::UseNonce(nonces.current(now.timestamp())));
            }
        }
        self.record(&proof, request, &url, max_age_secs).await?;
        Ok(proof)
    }

    async fn record(
        &self,
        proof: &Proof,
        request: &ProofFor<'_>,
        url: &str,
        max_age_secs: i64,
    ) -> Result<(), Refused> {
        // Past this no window accepts the proof, so its stream is never
        // consulted again.
        let expires_at = DateTime::<Utc>::from_timestamp(
            proof.iat.saturating_add(max_age_secs).min(i64::MAX / 2),
            0,
        )
        .ok_or(Refused::Invalid("the DPoP proof's iat is unreadable"))?;
        let command = AcceptProof {
            jkt: proof.jkt.clone(),
            jti: proof.jti.clone(),
            method: request.method.to_owned(),
            url: url.to_owned(),
            client_id: request.client_id.to_owned(),
            expires_at,
        };
        let metadata = Metadata::client(request.client_id, request.request_id, None);
        let stream = DpopProof::stream_id(&proof.jkt, &proof.jti, sha256_hex);
        match self
            .executor
            .execute_with::<DpopProof>(&stream, command, &metadata, Vec::new(), Stream::New)
            .await
        {
            Ok(_) => Ok(()),
            Err(ExecuteError::Rejected(DpopProofError::Replayed) | ExecuteError::Conflict) => Err(
                Refused::Invalid("this DPoP proof was used before; make a new one per request"),
            ),
            Err(e) => Err(Refused::Unavailable(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_fresh_for_its_period_and_the_next_and_cannot_be_forged() {
        let nonces = Nonces::new(&KeyRing::generate(), Duration::from_secs(300));
        let issued = nonces.current(1_000_000);
        assert!(nonces.is_fresh(&issued, 1_000_000));
        assert!(nonces.is_fresh(&issued, 1_000_000 + 300));
        assert!(!nonces.is_fresh(&issued, 1_000_000 + 600), "two periods on");
        let period = 1_000_000 / 300;
        assert!(!nonces.is_fresh(&format!("{period}.{}", "0".repeat(32)), 1_000_000));
        let other = Nonces::new(&KeyRing::generate(), Duration::from_secs(300));
        assert!(
            !other.is_fresh(&issued, 1_000_000),
            "another deployment's key"
        );
        assert!(!nonces.is_fresh("garbage", 1_000_000));
    }
}
