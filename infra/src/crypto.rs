//! Small, explicit crypto helpers. Secrets and tokens are random and long,
//! so SHA-256 is the right hash for them; passwords get argon2id.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

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

#[derive(Debug, Error)]
pub enum CryptoError {
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("ciphertext does not open under this key")]
    WrongKey,
    #[error("password hashing failed")]
    PasswordHash,
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

pub fn open(key: &Key, context: &str, sealed: &str) -> Result<Vec<u8>, CryptoError> {
    let blob = STANDARD
        .decode(sealed)
        .map_err(|_| CryptoError::Malformed)?;
    if blob.len() < NONCE_LEN {
        return Err(CryptoError::Malformed);
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
        .map_err(|_| CryptoError::WrongKey)
}

pub fn hmac_hex(key: &Key, message: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// 256 bits from the OS CSPRNG, base64url without padding: URL-safe, so it
/// fits in forms, headers and query strings unchanged (RFC 9700, R40).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An RFC 8628 user code from the OS CSPRNG (see
/// [`writ_domain::values::user_code`]).
pub fn random_user_code() -> String {
    writ_domain::values::user_code::from_random(|| OsRng.next_u32() as u8)
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| CryptoError::PasswordHash)
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_text_opens_only_with_its_key_and_context() {
        let key = Key::random();
        let blob = seal(&key, "sub-1", b"alice");
        assert_eq!(open(&key, "sub-1", &blob).ok(), Some(b"alice".to_vec()));
        assert!(open(&key, "sub-2", &blob).is_err());
        assert!(open(&Key::random(), "sub-1", &blob).is_err());
        assert!(!blob.contains("alice"));
    }

    #[test]
    fn random_tokens_are_url_safe_and_unique() {
        let tokens: std::collections::HashSet<String> =
            (0..100_000).map(|_| random_token()).collect();
        assert_eq!(tokens.len(), 100_000, "R48");
        assert!(tokens.iter().all(|t| t.len() == 43
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')));
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("s3cret-pass").unwrap_or_default();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("s3cret-pass", &hash));
        assert!(!verify_password("s3cret-pasS", &hash));
        assert!(!verify_password("s3cret-pass", "not a hash"));
    }
}
