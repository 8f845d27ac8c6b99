//! DPoP-bound tokens (RFC 9449 §7): the request presents the token under
//! the `DPoP` scheme with a proof signed by the key the token names in
//! `cnf.jkt`, made for this request (`htm`, `htu`), recently (`iat`), for
//! this token (`ath`), and never seen before (`jti`, remembered in
//! `replay` for as long as a proof's `iat` is accepted).

use chrono::Utc;
use writ_protocol::dpop::{self, Expected};

use crate::rejection::Rejection;
use crate::verify::{Principal, ResourceServer};

/// The request a DPoP-bound token came with.
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    /// The `DPoP` header's value; `None` when the request had none.
    pub proof: Option<&'a str>,
    pub method: &'a str,
    /// The request's path, without its query: `htu` is the API's public
    /// URL followed by it.
    pub path: &'a str,
}

impl ResourceServer {
    /// Verifies a token presented under the `DPoP` scheme: the token as
    /// [`Self::authenticate`] does, then that it is DPoP-bound and that
    /// the request's proof is a fresh one by its key for this request.
    pub async fn authenticate_dpop(
        &self,
        token: &str,
        request: DpopRequest<'_>,
    ) -> Result<Principal, Rejection> {
        let principal = self.verified(token).await?;
        let Some(bound_to) = principal.bound_to() else {
            return Err(Rejection::dpop(
                "invalid_token",
                "this token is not DPoP-bound: present it as Bearer",
            ));
        };
        let Some(proof) = request.proof else {
            return Err(Rejection::dpop(
                "invalid_dpop_proof",
                "a DPoP-bound token needs a DPoP proof",
            ));
        };
        let config = self.config();
        let Some(base) = config.public_url.as_deref().or_else(|| {
            let audience = config.audience.as_str();
            (audience.starts_with("https://") || audience.starts_with("http://"))
                .then_some(audience)
        }) else {
            return Err(Rejection::dpop(
                "invalid_dpop_proof",
                "this API does not know its public URL (Config::public_url)",
            ));
        };
        let url = format!("{}{}", base.trim_end_matches('/'), request.path);
        let now = Utc::now().timestamp();
        let max_age = i64::try_from(config.dpop_proof_max_age.as_secs()).unwrap_or(i64::MAX);
        let expected = Expected {
            method: request.method,
            url: &url,
            access_token: Some(token),
            now,
            max_age_secs: max_age,
            max_skew_secs: i64::try_from(config.skew.as_secs()).unwrap_or(i64::MAX),
        };
        let verified = dpop::verify(proof, &expected)
            .map_err(|why| Rejection::dpop("invalid_dpop_proof", why.0))?;
        if verified.jkt != bound_to {
            return Err(Rejection::dpop(
                "invalid_dpop_proof",
                "the DPoP proof is not signed by the key the token is bound to",
            ));
        }
        let until = verified.iat.saturating_add(max_age);
        if !self
            .proofs_seen()
            .first_use(&verified.jkt, &verified.jti, until, now)?
        {
            return Err(Rejection::dpop(
                "invalid_dpop_proof",
                "this DPoP proof was used before",
            ));
        }
        Ok(principal)
    }
}
