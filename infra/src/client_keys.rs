//! The public keys of `private_key_jwt` clients: their registered `jwks`,
//! or the set at their `jwks_uri`, fetched with a timeout, a size cap, no
//! redirects, no proxy and a cache (R57). Only URIs the client checks
//! allowed (https, or http on a loopback address) are ever stored, and a
//! host that resolves to a private, link-local, shared or multicast address
//! is not connected to, so a registration cannot aim Writ at the network
//! behind it (loopback stays allowed, for development).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde_json::Value;
use writ_domain::client::check_jwks;

use crate::outbound;

/// A key set larger than this is not a client's.
const MAX_BODY: usize = 64 * 1024;
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

#[derive(Clone)]
pub struct ClientKeys {
    cache: Arc<Mutex<LruCache<String, Cached>>>,
}

impl Default for ClientKeys {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(CACHED_SETS).unwrap_or(NonZeroUsize::MIN);
        Self {
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
        let url = outbound::callable(uri).map_err(KeysError::Unreadable)?;
        let http = outbound::client().map_err(KeysError::Setup)?;
        let mut response = http
            .get(url)
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
