//! Personal data: usernames become keyed account ids, and every personal
//! field is sealed under the subject's own data key, so forgetting a person
//! is deleting one key while the log and its hashes stay intact.

use precis_profiles::precis_core::profile::PrecisFastInvocation;
use precis_profiles::UsernameCaseMapped;
use thiserror::Error;
use writ_domain::values::Sealed;

use crate::crypto::{self, CryptoError, Key};
use crate::keys::KeyRing;

/// Shown wherever a forgotten subject's data used to be.
pub const FORGOTTEN: &str = "forgotten";

#[derive(Debug, Error)]
pub enum PersonalError {
    #[error("username is not allowed: it must be a non-empty RFC 8265 username (letters, digits and symbols, no spaces)")]
    BadUsername,
    #[error("the subject's data key cannot be unwrapped: {0}")]
    Key(#[from] CryptoError),
}

/// RFC 8265 UsernameCaseMapped: width-mapped, case-folded, NFC.
pub fn normalize_username(raw: &str) -> Result<String, PersonalError> {
    if raw.len() > 256 {
        return Err(PersonalError::BadUsername);
    }
    UsernameCaseMapped::enforce(raw)
        .map(|normalised| normalised.into_owned())
        .map_err(|_| PersonalError::BadUsername)
}

/// The `Account` aggregate id: HMAC of the normalised username under the
/// username key, so the log never holds the name in clear.
pub fn account_id(keys: &KeyRing, normalised_username: &str) -> String {
    crypto::hmac_hex(&keys.username, normalised_username)
}

/// A subject's data key, able to seal and open that subject's fields.
pub struct SubjectKey {
    sub: String,
    key: Key,
}

impl SubjectKey {
    pub fn generate(sub: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            key: Key::random(),
        }
    }

    pub fn wrap(&self, keys: &KeyRing) -> String {
        crypto::seal(&keys.key_encryption, &self.context("data-key"), &self.key.0)
    }

    pub fn unwrap(sub: &str, wrapped: &str, keys: &KeyRing) -> Result<Self, PersonalError> {
        let context = format!("{sub}/data-key");
        let bytes = crypto::open(&keys.key_encryption, &context, wrapped)?;
        let array: [u8; crate::crypto::KEY_LEN] =
            bytes.try_into().map_err(|_| CryptoError::Malformed)?;
        Ok(Self {
            sub: sub.to_owned(),
            key: Key(array),
        })
    }

    pub fn seal(&self, field: &str, plaintext: &str) -> Sealed {
        Sealed(crypto::seal(
            &self.key,
            &self.context(field),
            plaintext.as_bytes(),
        ))
    }

    pub fn open(&self, field: &str, sealed: &Sealed) -> Option<String> {
        crypto::open(&self.key, &self.context(field), &sealed.0)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    }

    fn context(&self, field: &str) -> String {
        format!("{}/{field}", self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_normalise_case_and_width() {
        assert_eq!(normalize_username("Alice").ok().as_deref(), Some("alice"));
        assert_eq!(
            normalize_username("\u{FF21}lice").ok().as_deref(),
            Some("alice")
        );
        assert!(normalize_username("").is_err());
        assert!(normalize_username("a b").is_err());
    }

    #[test]
    fn the_account_id_is_keyed_and_stable() {
        let keys = KeyRing::generate();
        assert_eq!(account_id(&keys, "alice"), account_id(&keys, "alice"));
        assert_ne!(
            account_id(&keys, "alice"),
            account_id(&KeyRing::generate(), "alice")
        );
    }

    #[test]
    fn a_wrapped_subject_key_opens_its_fields() {
        let keys = KeyRing::generate();
        let key = SubjectKey::generate("s1");
        let sealed = key.seal("email", "a@example.com");
        let unwrapped =
            SubjectKey::unwrap("s1", &key.wrap(&keys), &keys).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            unwrapped.open("email", &sealed).as_deref(),
            Some("a@example.com")
        );
        assert_eq!(unwrapped.open("name", &sealed), None);
        assert!(SubjectKey::unwrap("s2", &key.wrap(&keys), &keys).is_err());
    }
}
