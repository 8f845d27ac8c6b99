//! Sealed values: XChaCha20-Poly1305 under a server key, bound to a
//! context, as base64. Browsers carry them back (pending authorization
//! requests, ADR 0012), so opening one reads what a stranger sent: it
//! either authenticates under the key and context or is refused.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;

pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// A 256-bit symmetric key. Debug output never shows the bytes.
#[derive(Clone)]
pub struct Key(pub [u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn random() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unopened {
    /// Not base64, or shorter than a nonce.
    Malformed,
    /// Another key or context, or altered.
    WrongKey,
}

/// Encrypts with XChaCha20-Poly1305 under `key`, binding `context` (for
/// example a subject id) so a blob cannot be moved to another record.
pub fn seal(key: &Key, context: &str, plaintext: &[u8]) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let payload = Payload {
        msg: plaintext,
        aad: context.as_bytes(),
    };
    // Encryption only fails for messages beyond 256 GiB; ours are tiny.
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), payload)
        .unwrap_or_default();
    let mut blob = nonce.to_vec();
    blob.extend(ciphertext);
    STANDARD.encode(blob)
}

pub fn open(key: &Key, context: &str, sealed: &str) -> Result<Vec<u8>, Unopened> {
    let blob = STANDARD.decode(sealed).map_err(|_| Unopened::Malformed)?;
    if blob.len() < NONCE_LEN {
        return Err(Unopened::Malformed);
    }
    let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: context.as_bytes(),
            },
        )
        .map_err(|_| Unopened::WrongKey)
}
