//! What a resource server remembers of the DPoP proofs it accepted, so
//! that each is used once (RFC 9449 §11.1), in this process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use crate::rejection::Rejection;

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
    /// In the order accepted, which is about the order they expire in
    /// (proofs' `iat`s differ by at most a window): pruning pops what has
    /// expired from the front and stops at the first that has not, so it
    /// costs what it removes.
    expiring: VecDeque<(i64, String, String)>,
}

impl Seen {
    /// Every expired entry, wherever it is: only when the whole set is
    /// full, which a front prune could not relieve.
    fn prune_all(&mut self, now: i64) {
        self.proofs.retain(|_, until| *until >= now);
        self.expiring.retain(|(until, _, _)| *until >= now);
        self.by_key.clear();
        for (jkt, _) in self.proofs.keys() {
            *self.by_key.entry(jkt.clone()).or_default() += 1;
        }
    }

    fn prune(&mut self, now: i64) {
        while let Some((until, _, _)) = self.expiring.front() {
            if *until >= now {
                break;
            }
            let Some((_, jkt, jti)) = self.expiring.pop_front() else {
                break;
            };
            self.proofs.remove(&(jkt.clone(), jti));
            if let Some(count) = self.by_key.get_mut(&jkt) {
                *count -= 1;
                if *count == 0 {
                    self.by_key.remove(&jkt);
                }
            }
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
    pub(crate) fn first_use(
        &self,
        jkt: &str,
        jti: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, Rejection> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let of_key = |seen: &Seen| seen.by_key.get(jkt).copied().unwrap_or_default();
        if seen.proofs.len() >= self.capacity || of_key(&seen) >= self.per_key {
            seen.prune(now);
        }
        if seen.proofs.len() >= self.capacity {
            seen.prune_all(now);
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
        seen.expiring
            .push_back((until, jkt.to_owned(), jti.to_owned()));
        Ok(true)
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
