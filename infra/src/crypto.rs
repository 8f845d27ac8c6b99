//! Small, explicit crypto helpers. Secrets and tokens are random and long,
//! so SHA-256 is the right hash for them; passwords get argon2id.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

pub use writ_wire::sealed::{seal, Key, KEY_LEN};

#[derive(Debug, Error)]
pub enum CryptoError {
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("ciphertext does not open under this key")]
    WrongKey,
    #[error("password hashing failed")]
    PasswordHash,
}

pub fn open(key: &Key, context: &str, sealed: &str) -> Result<Vec<u8>, CryptoError> {
    writ_wire::sealed::open(key, context, sealed).map_err(|unopened| match unopened {
        writ_wire::sealed::Unopened::Malformed => CryptoError::Malformed,
        writ_wire::sealed::Unopened::WrongKey => CryptoError::WrongKey,
    })
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
