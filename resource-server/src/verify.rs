//! Token verification: local for JWTs, by introspection for opaque tokens,
//! and the deny-list last.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use writ_protocol::jose;
use writ_protocol::revocation::Revocation;
use writ_protocol::AccessTokenClaims;

use crate::denylist::{DenyList, TokenFacts};
use crate::rejection::Rejection;

/// An unknown `kid` fetches the JWKS again at most this often, so tokens
/// with invented key ids cannot make the server hammer Writ.
const JWKS_REFETCH: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Config {
    /// Writ's issuer, exactly as in its tokens' `iss`.
    pub issuer: String,
    /// This API's identifier; tokens must name it in `aud`.
    pub audience: String,
    /// Writ's JWKS [default: `<issuer>/jwks`].
    pub jwks_url: String,
    /// Unset: opaque tokens are refused and no call goes to Writ.
    pub introspection: Option<Introspection>,
    /// Clock-skew allowance for `exp`, `nbf`, `iat` and the deny-list's
    /// `iat` rules, and how far ahead a DPoP proof's `iat` may be.
    pub skew: Duration,
    /// This API's public base URL, which DPoP proofs name in `htu` (RFC
    /// 9449 §4.3) [default: `audience` when it is an http(s) URL].
    pub public_url: Option<String>,
    /// How old a DPoP proof's `iat` may be; its `jti` is remembered that
    /// long [default: 60 s].
    pub dpop_proof_max_age: Duration,
    /// The most DPoP `jti`s remembered at once; past it, proofs are
    /// refused (503) until older ones age out [default: 100 000].
    pub dpop_replay_capacity: usize,
    /// The most remembered per key; past it, that key's proofs are
    /// refused (`invalid_dpop_proof`) until older ones age out
    /// [default: 10 000].
    pub dpop_replay_per_key: usize,
    /// Check each JWT's entry in Writ's token status list
    /// (draft-ietf-oauth-status-list) before accepting it: revocations are
    /// then seen without a feed, within the list's `ttl` [default: off].
    pub status_lists: bool,
    /// The longest a status list is cached, whatever its `ttl` says
    /// [default: 5 min].
    pub status_list_max_ttl: Duration,
    /// While Writ cannot be reached, how long past its `ttl` a list in hand
    /// still decides (never past its `exp`); then tokens are refused with
    /// 503 [default: 1 h].
    pub status_list_max_stale: Duration,
    /// How long a revocation learnt from a Shared Signals SET is kept:
    /// SETs do not say when the tokens they revoke expire, so at least
    /// Writ's longest access-token lifetime [default: 24 h].
    pub signal_memory: Duration,
}

impl Config {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        let issuer = issuer.into();
        Self {
            jwks_url: format!("{}/jwks", issuer.trim_end_matches('/')),
            issuer,
            audience: audience.into(),
            introspection: None,
            skew: Duration::from_secs(5),
            public_url: None,
            dpop_proof_max_age: Duration::from_secs(60),
            dpop_replay_capacity: 100_000,
            dpop_replay_per_key: 10_000,
            status_lists: false,
            status_list_max_ttl: Duration::from_secs(300),
            status_list_max_stale: Duration::from_secs(3600),
            signal_memory: Duration::from_secs(24 * 3600),
        }
    }
}

/// RFC 7662 introspection with this API's client credentials.
#[derive(Clone)]
pub struct Introspection {
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for Introspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspection")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A token that verified and is not revoked.
#[derive(Debug, Clone)]
pub struct Principal {
    pub sub: Option<String>,
    pub client_id: Option<String>,
    pub scopes: HashSet<String>,
    pub jti: Option<String>,
    pub claims: Value,
}

#[derive(Clone)]
pub struct ResourceServer {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: reqwest::Client,
    /// kid → (alg, public JWK).
    keys: RwLock<HashMap<String, (String, Value)>>,
    fetched_at: Mutex<Option<Instant>>,
    denylist: RwLock<DenyList>,
    introspection_calls: AtomicU64,
    applied: AtomicU64,
    ready: tokio::sync::watch::Sender<bool>,
    pub(crate) proofs_seen: crate::replay::SeenProofs,
    pub(crate) status_lists: crate::status::StatusLists,
}

impl Principal {
    /// The thumbprint of the DPoP key the token is bound to (`cnf.jkt`).
    pub fn bound_to(&self) -> Option<&str> {
        self.claims["cnf"]["jkt"].as_str()
    }
}

impl ResourceServer {
    pub fn new(config: Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                denylist: RwLock::new(DenyList::new(config.skew)),
                proofs_seen: crate::replay::SeenProofs::new(
                    config.dpop_replay_capacity,
                    config.dpop_replay_per_key,
                ),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    // The JWKS, lists and introspection are Writ's own
                    // URLs: a redirect would be a fetch somewhere else.
                    .redirect(reqwest::redirect::Policy::none())
                    // Writ closes a kept-alive connection idle for its
                    // header_read_timeout (10 s by default); reusing one at
                    // that moment would fail an introspection call.
                    .pool_idle_timeout(Duration::from_secs(5))
                    .build()
                    .unwrap_or_default(),
                keys: RwLock::default(),
                fetched_at: Mutex::default(),
                introspection_calls: AtomicU64::default(),
                applied: AtomicU64::default(),
                config,
                ready: tokio::sync::watch::channel(false).0,
                status_lists: crate::status::StatusLists::default(),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn proofs_seen(&self) -> &crate::replay::SeenProofs {
        &self.inner.proofs_seen
    }

    /// Verifies a bearer token and checks the deny-list. A DPoP-bound
    /// token is refused here: it needs [`Self::authenticate_dpop`].
    pub async fn authenticate(&self, token: &str) -> Result<Principal, Rejection> {
        let principal = self.verified(token).await?;
        if principal.bound_to().is_some() {
            return Err(Rejection::dpop(
                "invalid_token",
                "this token is DPoP-bound: present it as DPoP, with a proof",
            ));
        }
        Ok(principal)
    }

    pub(crate) async fn verified(&self, token: &str) -> Result<Principal, Rejection> {
        let principal = if jose::looks_like_jwt(token) {
            self.verify_jwt(token).await?
        } else {
            self.introspect(token).await?
        };
        let issued_at = principal.claims["iat"]
            .as_i64()
            .and_then(|iat| DateTime::<Utc>::from_timestamp(iat, 0))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let facts = TokenFacts {
            jti: principal.jti.clone().unwrap_or_default(),
            gid: principal.claims["gid"].as_str().map(str::to_owned),
            sub: principal.sub.clone(),
            client_id: principal.client_id.clone(),
            issued_at,
        };
        if self.read_denylist().denies(&facts) {
            return Err(Rejection::invalid_token("the token was revoked"));
        }
        if self.inner.config.status_lists && jose::looks_like_jwt(token) {
            crate::status::check(self, &self.inner.status_lists, &principal.claims).await?;
        }
        Ok(principal)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Verifies any JWS Writ signed (an access token, a status list, a
    /// SET) against its JWKS, fetched again for an unknown `kid`.
    pub(crate) async fn verify_signed(&self, token: &str) -> Option<jose::Verified> {
        self.verify_signed_up_to(jose::MAX_JWT_LEN, token).await
    }

    /// [`Self::verify_signed`] for a JWS up to `max_len` bytes.
    pub(crate) async fn verify_signed_up_to(
        &self,
        max_len: usize,
        token: &str,
    ) -> Option<jose::Verified> {
        let known = |kid: &str| {
            self.inner
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(kid)
                .cloned()
        };
        if let Some(verified) = jose::verify_up_to(max_len, token, known) {
            return Some(verified);
        }
        self.refetch_keys().await;
        jose::verify_up_to(max_len, token, known)
    }

    fn read_denylist(&self) -> std::sync::RwLockReadGuard<'_, DenyList> {
        self.inner
            .denylist
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one revocation message; duplicates are harmless.
    pub fn apply(&self, message: &Revocation) {
        let now = Utc::now();
        let mut list = self
            .inner
            .denylist
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        list.apply(message, now);
        // Pruning walks every entry: once a second, not once a message.
        if list
            .pruned_at()
            .is_none_or(|at| now - at >= chrono::Duration::seconds(1))
        {
            list.prune(now);
        }
        self.inner.applied.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies one message as the topic carries it (JSON); one that is
    /// not a revocation changes nothing.
    pub fn apply_payload(&self, payload: &[u8]) -> Result<(), serde_json::Error> {
        self.apply(&serde_json::from_slice::<Revocation>(payload)?);
        Ok(())
    }

    /// Messages applied since start, duplicates included.
    pub fn messages_applied(&self) -> u64 {
        self.inner.applied.load(Ordering::Relaxed)
    }

    /// The cursor of the newest revocation applied and when it was applied.
    pub fn lag(&self) -> (Option<String>, Option<DateTime<Utc>>) {
        let list = self.read_denylist();
        let (cursor, at) = list.position();
        (cursor.map(str::to_owned), at)
    }

    pub fn denied_entries(&self) -> usize {
        self.read_denylist().len()
    }

    /// Calls made to Writ's introspection endpoint since start.
    pub fn introspection_calls(&self) -> u64 {
        self.inner.introspection_calls.load(Ordering::Relaxed)
    }

    /// Set once the revocation feed has read everything the stream held
    /// when it started; before that, revoked tokens may still pass.
    pub(crate) fn mark_ready(&self) {
        self.inner.ready.send_replace(true);
    }

    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Waits until [`Self::is_ready`].
    pub async fn caught_up(&self) {
        let mut ready = self.inner.ready.subscribe();
        let _ = ready.wait_for(|ready| *ready).await;
    }

    async fn verify_jwt(&self, token: &str) -> Result<Principal, Rejection> {
        let verified = self
            .verify_signed(token)
            .await
            .ok_or_else(|| Rejection::invalid_token("the token does not verify"))?;
        if !is_access_token_typ(verified.header["typ"].as_str()) {
            return Err(Rejection::invalid_token("not an access token (typ)"));
        }
        let claims = typed(&verified.claims)?;
        let now = Utc::now().timestamp();
        self.check_claims(&claims, now)?;
        check_times(&claims, now, self.inner.config.skew.as_secs() as i64)?;
        Ok(principal_from(claims, verified.claims))
    }

    fn check_claims(&self, claims: &AccessTokenClaims, now: i64) -> Result<(), Rejection> {
        let config = &self.inner.config;
        if claims.iss != config.issuer {
            return Err(Rejection::invalid_token("issued by someone else"));
        }
        if !claims.aud.contains(&config.audience) {
            return Err(Rejection::invalid_token("not meant for this API (aud)"));
        }
        if claims.exp + config.skew.as_secs() as i64 > now {
            Ok(())
        } else {
            Err(Rejection::invalid_token("the token has expired"))
        }
    }

    async fn refetch_keys(&self) {
        {
            let mut fetched_at = self
                .inner
                .fetched_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if fetched_at.is_some_and(|at| at.elapsed() < JWKS_REFETCH) {
                return;
            }
            *fetched_at = Some(Instant::now());
        }
        let fetched = async {
            self.inner
                .http
                .get(&self.inner.config.jwks_url)
                .send()
                .await?
                .error_for_status()?
                .json::<Value>()
                .await
        };
        match fetched.await {
            Ok(jwks) => {
                let keys: HashMap<String, (String, Value)> = jwks["keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|jwk| {
                        Some((
                            jwk["kid"].as_str()?.to_owned(),
                            (jwk["alg"].as_str()?.to_owned(), jwk.clone()),
                        ))
                    })
                    .collect();
                *self
                    .inner
                    .keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = keys;
            }
            Err(err) => {
                tracing::warn!(error = %err, url = %self.inner.config.jwks_url, "cannot fetch Writ's JWKS")
            }
        }
    }

    async fn introspect(&self, token: &str) -> Result<Principal, Rejection> {
        let Some(introspection) = &self.inner.config.introspection else {
            return Err(Rejection::invalid_token(
                "opaque tokens need introspection, which is off",
            ));
        };
        self.inner
            .introspection_calls
            .fetch_add(1, Ordering::Relaxed);
        let answer = self
            .inner
            .http
            .post(&introspection.url)
            .header(
                reqwest::header::AUTHORIZATION,
                crate::basic::authorization(&introspection.client_id, &introspection.client_secret),
            )
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|_| Rejection::unavailable())?;
        let claims: Value = answer
            .error_for_status()
            .map_err(|_| Rejection::unavailable())?
            .json()
            .await
            .map_err(|_| Rejection::unavailable())?;
        if claims["active"] != Value::Bool(true) {
            return Err(Rejection::invalid_token("the token is not active"));
        }
        let typed = typed(&claims)?;
        self.check_claims(&typed, Utc::now().timestamp())?;
        Ok(principal_from(typed, claims))
    }
}

/// RFC 9068 §4: `at+jwt`, or `application/at+jwt` in full, which RFC 7515
/// §4.1.9 makes the same media type, compared case-insensitively.
fn is_access_token_typ(typ: Option<&str>) -> bool {
    typ.is_some_and(|typ| {
        let typ = typ.to_ascii_lowercase();
        typ == "at+jwt" || typ == "application/at+jwt"
    })
}

/// Claims that are not shaped like an access token's (a missing `iss`,
/// `aud` or `exp`, a time that is not a number) verify nothing.
fn typed(claims: &Value) -> Result<AccessTokenClaims, Rejection> {
    AccessTokenClaims::deserialize(claims)
        .map_err(|_| Rejection::invalid_token("the token's claims are malformed"))
}

/// RFC 7519 §4.1.5 and RFC 9068 §2.2: a token is not used before its
/// `nbf`, nor accepted with an `iat` in the future, give or take `skew`
/// seconds of clock difference. `iat` is required (RFC 9068 §2.2): Writ
/// always sets it, and the deny-list's "everything issued before" rules
/// cannot place a token without it. `nbf` is optional.
fn check_times(claims: &AccessTokenClaims, now: i64, skew: i64) -> Result<(), Rejection> {
    let latest = now + skew;
    if claims.nbf.is_some_and(|nbf| nbf > latest) {
        return Err(Rejection::invalid_token("the token is not yet valid (nbf)"));
    }
    match claims.iat {
        None => Err(Rejection::invalid_token("the token has no iat")),
        Some(iat) if iat > latest => Err(Rejection::invalid_token(
            "the token was issued in the future (iat)",
        )),
        Some(_) => Ok(()),
    }
}

fn principal_from(typed: AccessTokenClaims, claims: Value) -> Principal {
    Principal {
        scopes: typed.scopes().map(str::to_owned).collect(),
        sub: typed.sub,
        client_id: typed.client_id,
        jti: typed.jti,
        claims,
    }
}

#[cfg(test)]
pub(crate) mod tests;
