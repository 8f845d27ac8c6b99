//! The public keys of `private_key_jwt` clients: their registered `jwks`,
//! or the set at their `jwks_uri`, fetched with a timeout, a size cap, no
//! redirects and a cache (R57). Only URIs the client checks allowed (https,
//! or http on a loopback address) are ever stored, so none other is fetched.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde_json::Value;
use writ_domain::client::{check_jwks, ClientSettings};

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
    #[error("the client has no keys")]
    None,
    #[error("the client's jwks_uri could not be read: {0}")]
    Unreadable(String),
}

struct Cached {
    keys: Arc<Value>,
    fetched: Instant,
}

#[derive(Clone)]
pub struct ClientKeys {
    http: reqwest::Client,
    cache: Arc<Mutex<LruCache<String, Cached>>>,
}

impl Default for ClientKeys {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let capacity = NonZeroUsize::new(CACHED_SETS).unwrap_or(NonZeroUsize::MIN);
        Self {
            http,
            cache: Arc::new(Mutex::new(LruCache::new(capacity))),
        }
    }
}

impl ClientKeys {
    /// The client's key set. `stale_ok` is false after a `kid` was not
    /// found in the cached set: a set older than [`REFETCH_AFTER`] is then
    /// fetched again.
    pub async fn of(
        &self,
        settings: &ClientSettings,
        stale_ok: bool,
    ) -> Result<Arc<Value>, KeysError> {
        if let Some(jwks) = &settings.jwks {
            return Ok(Arc::new(jwks.clone()));
        }
        let Some(uri) = &settings.jwks_uri else {
            return Err(KeysError::None);
        };
        if let Some(keys) = self.cached(uri, stale_ok) {
            return Ok(keys);
        }
        let keys = Arc::new(self.fetch(uri).await?);
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(
                uri.clone(),
                Cached {
                    keys: keys.clone(),
                    fetched: Instant::now(),
                },
            );
        }
        Ok(keys)
    }

    fn cached(&self, uri: &str, stale_ok: bool) -> Option<Arc<Value>> {
        let mut cache = self.cache.lock().ok()?;
        let cached = cache.get(uri)?;
        let age = cached.fetched.elapsed();
        let usable = age < FRESH_FOR && (stale_ok || age < REFETCH_AFTER);
        usable.then(|| cached.keys.clone())
    }

    async fn fetch(&self, uri: &str) -> Result<Value, KeysError> {
        let unreadable = |why: &str| KeysError::Unreadable(why.to_owned());
        let mut response = self
            .http
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
