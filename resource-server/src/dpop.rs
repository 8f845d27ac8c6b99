//! DPoP-bound tokens (RFC 9449 §7): the request presents the token under
//! the `DPoP` scheme with a proof signed by the key the token names in
//! `cnf.jkt`, made for this request (`htm`, `htu`), recently (`iat`), for
//! this token (`ath`), and never seen before (`jti`, remembered here for
//! as long as a proof's `iat` is accepted).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

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

/// The `jti`s of accepted proofs, per key, each until no window accepts
/// its proof any more. Bounded in all and per key: a full set refuses new
/// proofs rather than forget one that could still be replayed, and one
/// key's holder cannot fill it for everyone.
pub(crate) struct SeenProofs {
    capacity: usize,
    per_key: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// (thumbprint, `jti`) → until when.
    proofs: HashMap<(String, String), i64>,
    by_key: HashMap<String, usize>,
}

impl Seen {
    fn prune(&mut self, now: i64) {
        self.proofs.retain(|_, until| *until >= now);
        self.by_key.clear();
        for (jkt, _) in self.proofs.keys() {
            *self.by_key.entry(jkt.clone()).or_default() += 1;
        }
    }
}

impl SeenProofs {
    pub(crate) fn new(capacity: usize, per_key: usize) -> Self {
        Self {
            capacity,
            per_key,
            seen: Mutex::default(),
        }
    }

    /// Whether this is the first use of `jti` by `jkt`; remembered until
    /// `until`.
    fn first_use(&self, jkt: &str, jti: &str, until: i64, now: i64) -> Result<bool, Rejection> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let of_key = |seen: &Seen| seen.by_key.get(jkt).copied().unwrap_or_default();
        if seen.proofs.len() >= self.capacity || of_key(&seen) >= self.per_key {
            seen.prune(now);
        }
        let key = (jkt.to_owned(), jti.to_owned());
        if seen.proofs.contains_key(&key) {
            return Ok(false);
        }
        if seen.proofs.len() >= self.capacity {
            return Err(Rejection::unavailable());
        }
        if of_key(&seen) >= self.per_key {
            return Err(Rejection::dpop(
                "invalid_dpop_proof",
                "too many recent proofs by this key; retry shortly",
            ));
        }
        seen.proofs.insert(key, until);
        *seen.by_key.entry(jkt.to_owned()).or_default() += 1;
        Ok(true)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_used_once_and_a_full_set_refuses_until_entries_age_out() {
        let seen = SeenProofs::new(2, 2);
        assert_eq!(seen.first_use("k", "a", 100, 0), Ok(true));
        assert_eq!(seen.first_use("k", "a", 100, 0), Ok(false));
        assert_eq!(seen.first_use("j", "b", 10, 0), Ok(true));
        assert!(seen.first_use("i", "c", 100, 0).is_err(), "full");
        assert_eq!(seen.first_use("i", "c", 100, 11), Ok(true), "b aged out");
        assert_eq!(seen.first_use("k", "a", 100, 11), Ok(false), "a has not");
    }

    #[test]
    fn one_key_cannot_fill_the_set_for_everyone() {
        let seen = SeenProofs::new(100, 2);
        assert_eq!(seen.first_use("k", "a", 10, 0), Ok(true));
        assert_eq!(seen.first_use("k", "b", 100, 0), Ok(true));
        let refused = seen.first_use("k", "c", 100, 0);
        assert_eq!(
            refused.map_err(|r| r.error()),
            Err(Some("invalid_dpop_proof"))
        );
        assert_eq!(
            seen.first_use("other", "c", 100, 0),
            Ok(true),
            "other keys go on"
        );
        assert_eq!(seen.first_use("k", "c", 100, 11), Ok(true), "a aged out");
    }
}
