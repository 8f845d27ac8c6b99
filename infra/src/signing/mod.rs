//! Signing keys at run time: the active signer per algorithm, every
//! published key for verification, and the JWKS. Private keys live in
//! `signing_key_secrets`, sealed under the key-encryption key and bound to
//! their kid; the log holds only public JWKs.

pub mod jwt;
pub mod keypair;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use writ_domain::signing_key::{SigningKey, SigningKeyCommand};

use crate::crypto;
use crate::keys::KeyRing;
pub use keypair::{KeyError, Signer};
use writ_store::executor::{ExecuteError, Executor, Metadata, Stream};
use writ_store::views::keys::{self as view, KeyStatus};
use writ_store::{SideWrite, Store};

/// How stale the in-process view of keys may get: rotations by another
/// process are picked up within this; unknown kids trigger a reload sooner.
const RELOAD_EVERY: Duration = Duration::from_secs(5);
const UNKNOWN_KID_RELOAD_GAP: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct PublishedKey {
    pub kid: String,
    pub alg: String,
    pub jwk: Value,
    pub status: KeyStatus,
    pub updated_at: String,
}

#[derive(Default)]
struct Loaded {
    signers: HashMap<String, Arc<Signer>>,
    /// Every active key's signer by kid, for the next reload to keep.
    active: HashMap<String, Arc<Signer>>,
    published: Vec<PublishedKey>,
    at: Option<Instant>,
}

#[derive(Clone)]
pub struct KeySet {
    store: Store,
    keys: KeyRing,
    loaded: Arc<RwLock<Loaded>>,
}

fn sealing_context(kid: &str) -> String {
    format!("signing-key/{kid}")
}

impl KeySet {
    pub async fn load(store: Store, keys: KeyRing) -> Result<Self, KeyError> {
        let set = Self {
            store,
            keys,
            loaded: Arc::default(),
        };
        set.reload().await?;
        Ok(set)
    }

    pub async fn reload(&self) -> Result<(), KeyError> {
        let rows = view::by_last_change(self.store.db())
            .await
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let mut loaded = Loaded {
            at: Some(Instant::now()),
            ..Loaded::default()
        };
        // A kid's secret is written once, with the key, and an active key
        // only ever retires: the signer made for a kid active at the last
        // reload is what its secret would give again. So a reload unseals
        // and parses only newly active keys (RSA's parse was most of each
        // reload's time), as long as the kid's secret is still there.
        let known = self
            .loaded
            .read()
            .map(|current| current.active.clone())
            .unwrap_or_default();
        for row in rows {
            let key = PublishedKey {
                jwk: serde_json::from_str(&row.public_jwk).unwrap_or(Value::Null),
                kid: row.kid,
                alg: row.alg,
                status: row.status,
                updated_at: row.updated_at,
            };
            if key.status == KeyStatus::Active {
                let signer = match known.get(&key.kid) {
                    Some(signer) if signer.alg == key.alg && row.wrapped_private.is_some() => {
                        signer.clone()
                    }
                    _ => Arc::new(self.open_signer(&key, row.wrapped_private)?),
                };
                // Rows come oldest first, so the newest activation wins.
                loaded.signers.insert(key.alg.clone(), signer.clone());
                loaded.active.insert(key.kid.clone(), signer);
            }
            loaded.published.push(key);
        }
        if let Ok(mut guard) = self.loaded.write() {
            *guard = loaded;
        }
        Ok(())
    }

    fn open_signer(&self, key: &PublishedKey, sealed: Option<String>) -> Result<Signer, KeyError> {
        let pkcs8 = crypto::open(
            &self.keys.key_encryption,
            &sealing_context(&key.kid),
            &sealed.unwrap_or_default(),
        )
        .map_err(|e| KeyError::Rejected(format!("key {}: {e}", key.kid)))?;
        Signer::from_pkcs8(&key.kid, &key.alg, &pkcs8)
    }

    /// Reloads in the background so rotations by `writ keys rotate` in
    /// another process reach this one.
    pub fn spawn_reloader(&self) {
        let set = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(RELOAD_EVERY);
            loop {
                ticks.tick().await;
                if let Err(err) = set.reload().await {
                    tracing::warn!(error = %err, "signing keys could not be reloaded");
                }
            }
        });
    }

    pub fn signer(&self, alg: &str) -> Option<Arc<Signer>> {
        self.loaded.read().ok()?.signers.get(alg).cloned()
    }

    pub fn published(&self) -> Vec<PublishedKey> {
        self.loaded
            .read()
            .map(|l| l.published.clone())
            .unwrap_or_default()
    }

    fn key_for(&self, kid: &str) -> Option<(String, Value)> {
        let loaded = self.loaded.read().ok()?;
        loaded
            .published
            .iter()
            .find(|k| k.kid == kid && matches!(k.status, KeyStatus::Active | KeyStatus::Retired))
            .map(|k| (k.alg.clone(), k.jwk.clone()))
    }

    /// Verifies a JWT signed by one of Writ's keys. A kid this process has
    /// not seen yet (rotated elsewhere) triggers one early reload.
    pub async fn verify(&self, token: &str) -> Option<jwt::Verified> {
        if let Some(verified) = jwt::verify(token, |kid| self.key_for(kid)) {
            return Some(verified);
        }
        let stale = self
            .loaded
            .read()
            .ok()?
            .at
            .is_none_or(|at| at.elapsed() > UNKNOWN_KID_RELOAD_GAP);
        if stale && self.reload().await.is_ok() {
            return jwt::verify(token, |kid| self.key_for(kid));
        }
        None
    }

    /// The JWKS: active keys, and retired keys while tokens they signed may
    /// still live (`longest_token_ttl` after retirement).
    pub fn jwks(&self, now: DateTime<Utc>, longest_token_ttl: Duration) -> Value {
        let horizon = chrono::Duration::from_std(longest_token_ttl).unwrap_or_default();
        let keys: Vec<Value> = self
            .published()
            .into_iter()
            .filter(|k| match k.status {
                KeyStatus::Active => true,
                KeyStatus::Retired => DateTime::parse_from_rfc3339(&k.updated_at)
                    .is_ok_and(|at| at.with_timezone(&Utc) + horizon > now),
                KeyStatus::Generated | KeyStatus::Unrecognised => false,
            })
            .map(|k| k.jwk)
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the key could not be recorded: {0}")]
    Store(String),
}

fn store_error<E: std::error::Error>(err: ExecuteError<E>) -> RotateError {
    RotateError::Store(err.to_string())
}

/// Generates, records and activates a new key of `alg`, then retires the
/// previously active keys of that algorithm. Returns the new kid.
pub async fn rotate(
    executor: &Executor,
    store: &Store,
    keys: &KeyRing,
    alg: &str,
    actor: &str,
) -> Result<String, RotateError> {
    let generated = keypair::generate(alg)?;
    let metadata = Metadata::cli(actor);
    let sealed = crypto::seal(
        &keys.key_encryption,
        &sealing_context(&generated.kid),
        &generated.pkcs8,
    );
    let previous = active_kids(store, generated.alg).await?;
    executor
        .execute_with::<SigningKey>(
            &generated.kid,
            SigningKeyCommand::Generate {
                kid: generated.kid.clone(),
                alg: generated.alg.to_owned(),
                public_jwk: generated.public_jwk.clone(),
            },
            &metadata,
            vec![SideWrite::StoreSigningSecret {
                kid: generated.kid.clone(),
                wrapped_private: sealed,
            }],
            Stream::New,
        )
        .await
        .map_err(store_error)?;
    executor
        .execute::<SigningKey>(&generated.kid, SigningKeyCommand::Activate, &metadata)
        .await
        .map_err(store_error)?;
    for kid in previous {
        match executor
            .execute::<SigningKey>(&kid, SigningKeyCommand::Retire, &metadata)
            .await
        {
            Ok(_) | Err(ExecuteError::Rejected(_)) => {}
            Err(other) => return Err(store_error(other)),
        }
    }
    Ok(generated.kid)
}

async fn active_kids(store: &Store, alg: &str) -> Result<Vec<String>, RotateError> {
    view::active_kids(store.db(), alg)
        .await
        .map_err(|e| RotateError::Store(e.to_string()))
}

/// First start: make sure an active key exists for each algorithm given.
pub async fn ensure_active(
    executor: &Executor,
    store: &Store,
    keys: &KeyRing,
    algs: &[&str],
) -> Result<(), RotateError> {
    for alg in algs {
        if active_kids(store, alg).await?.is_empty() {
            let kid = rotate(executor, store, keys, alg, "writ").await?;
            tracing::info!(kid = %kid, alg = %alg, "generated a signing key");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reload_keeps_the_signers_of_unchanged_keys_and_takes_a_rotation() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open_sqlite(dir.path())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let executor = Executor::new(store.clone(), writ_store::services::system());
        let keys = KeyRing::generate();
        ensure_active(&executor, &store, &keys, &["ES256", "RS256"])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let set = KeySet::load(store.clone(), keys.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let signer = |alg: &str| set.signer(alg).unwrap_or_else(|| panic!("no {alg} signer"));
        let before = signer("RS256");
        let es256 = signer("ES256");
        set.reload().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            Arc::ptr_eq(&before, &signer("RS256")),
            "an unchanged key was parsed again"
        );

        let rotated = rotate(&executor, &store, &keys, "RS256", "test")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        set.reload().await.unwrap_or_else(|e| panic!("{e}"));
        let after = signer("RS256");
        assert_eq!(after.kid, rotated);
        // The new signer signs what the new published key verifies.
        let token = jwt::encode(&after, "JWT", &serde_json::json!({ "sub": "alice" }))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(set.verify(&token).await.is_some());
        assert!(
            Arc::ptr_eq(&es256, &signer("ES256")),
            "a key the rotation left alone was parsed again"
        );
    }
}
