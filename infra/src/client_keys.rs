//! The public keys of `private_key_jwt` clients: their registered `jwks`,
//! or the set at their `jwks_uri`, fetched with a timeout, a size cap, no
//! redirects, no proxy and a cache (R57). Only URIs the client checks
//! allowed (https, or http on a loopback address) are ever stored, and a
//! host that resolves to a private, link-local, shared or multicast address
//! is not connected to, so a registration cannot aim Writ at the network
//! behind it (loopback stays allowed, for development).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde_json::Value;
use writ_domain::client::check_jwks;

/// A key set larger than this is not a client's.
const MAX_BODY: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched set is used before it is fetched again.
const FRESH_FOR: Duration = Duration::from_secs(300);
/// An unknown `kid` fetches again (the client rotated), but not more often.
const REFETCH_AFTER: Duration = Duration::from_secs(30);
const CACHED_SETS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("the client's jwks_uri could not be read: {0}")]
    Unreadable(String),
    #[error("the HTTP client for jwks_uri cannot be built: {0}")]
    Setup(String),
}

/// A fetch's outcome; a failure is remembered for [`REFETCH_AFTER`] too,
/// so requests naming a client whose `jwks_uri` hangs do not each wait on
/// it.
struct Cached {
    keys: Result<Arc<Value>, String>,
    fetched: Instant,
}

/// Whether Writ may connect to `ip` for a client's keys.
fn reachable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || !(v4.is_private()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_broadcast()
                    || v4.is_multicast()
                    || v4.is_documentation()
                    || (a == 100 && (64..128).contains(&b))
                    || a == 0)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => reachable(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || !(v6.is_unspecified()
                        || v6.is_multicast()
                        || (first & 0xfe00) == 0xfc00
                        || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// Resolves names, keeping only addresses [`reachable`] allows.
struct ReachableOnly;

impl reqwest::dns::Resolve for ReachableOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| reachable(address.ip()))
                .collect();
            if found.is_empty() {
                return Err("the host resolves to no address Writ may fetch keys from".into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Built on the first fetch, not at start-up: every `writ` command opens a
/// context, and most never fetch a key set. A client that cannot be built
/// fails each fetch; it never falls back to one with redirects or proxies.
fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(ReachableOnly))
        .build()
        .map_err(|e| e.to_string())
}

#[derive(Clone)]
pub struct ClientKeys {
    http: Arc<OnceLock<Result<reqwest::Client, String>>>,
    cache: Arc<Mutex<LruCache<String, Cached>>>,
}

impl Default for ClientKeys {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(CACHED_SETS).unwrap_or(NonZeroUsize::MIN);
        Self {
            http: Arc::default(),
            cache: Arc::new(Mutex::new(LruCache::new(capacity))),
        }
    }
}

impl ClientKeys {
    /// The key set at a client's `jwks_uri` (a registered `jwks` needs no
    /// fetching). `stale_ok` is false after a `kid` was not found in the
    /// cached set: a set older than [`REFETCH_AFTER`] is then fetched again.
    pub async fn fetched(&self, uri: &str, stale_ok: bool) -> Result<Arc<Value>, KeysError> {
        if let Some(cached) = self.cached(uri, stale_ok) {
            return cached.map_err(KeysError::Unreadable);
        }
        let fetched = self
            .fetch(uri)
            .await
            .map(Arc::new)
            .map_err(|e| e.to_string());
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(
                uri.to_owned(),
                Cached {
                    keys: fetched.clone(),
                    fetched: Instant::now(),
                },
            );
        }
        fetched.map_err(KeysError::Unreadable)
    }

    fn cached(&self, uri: &str, stale_ok: bool) -> Option<Result<Arc<Value>, String>> {
        let mut cache = self.cache.lock().ok()?;
        let cached = cache.get(uri)?;
        let age = cached.fetched.elapsed();
        let usable = match &cached.keys {
            Ok(_) => age < FRESH_FOR && (stale_ok || age < REFETCH_AFTER),
            Err(_) => age < REFETCH_AFTER,
        };
        usable.then(|| cached.keys.clone())
    }

    async fn fetch(&self, uri: &str) -> Result<Value, KeysError> {
        let unreadable = |why: &str| KeysError::Unreadable(why.to_owned());
        // A literal address never reaches the resolver.
        let literal = reqwest::Url::parse(uri).ok().and_then(|url| {
            let host = url.host_str()?;
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
        });
        if literal.is_some_and(|ip| !reachable(ip)) {
            return Err(unreadable("the address is not one Writ fetches keys from"));
        }
        let http = self
            .http
            .get_or_init(http_client)
            .as_ref()
            .map_err(|e| KeysError::Setup(e.clone()))?;
        let mut response = http
            .get(uri)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| KeysError::Unreadable(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(unreadable("the answer was not 2xx"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| KeysError::Unreadable(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(unreadable("the key set is larger than 64 KiB"));
            }
            body.extend_from_slice(&chunk);
        }
        let keys: Value =
            serde_json::from_slice(&body).map_err(|_| unreadable("the key set is not JSON"))?;
        check_jwks(&keys).map_err(|e| KeysError::Unreadable(e.to_string()))?;
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_and_loopback_addresses_are_reachable() {
        for ok in ["127.0.0.1", "::1", "93.184.216.34", "2606:2800:220:1::1"] {
            assert!(
                reachable(ok.parse().unwrap_or_else(|e| panic!("{e}"))),
                "{ok}"
            );
        }
        for refused in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(
                !reachable(refused.parse().unwrap_or_else(|e| panic!("{e}"))),
                "{refused}"
            );
        }
    }
}
