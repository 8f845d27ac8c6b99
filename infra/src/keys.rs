//! The key file: the key-encryption key, the username key and the
//! checkpoint-signing key. One file, mode 0600, never in the database, so a
//! database dump alone reveals no personal data.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::crypto::{Key, KEY_LEN};

#[derive(Debug, Clone)]
pub struct KeyRing {
    /// Wraps per-subject data keys and signing keys' private halves.
    pub key_encryption: Key,
    /// Keys the HMAC that turns a username into an account id.
    pub username: Key,
    /// Signs checkpoints over the global order.
    pub checkpoint: Key,
}

#[derive(Debug, Error)]
pub enum KeyFileError {
    #[error("key file {0} is missing; `writ serve` creates it on first start with embedded SQLite, or run `writ keys init --key-file {0}`")]
    Missing(String),
    #[error("key file {0} already exists; refusing to overwrite it")]
    AlreadyExists(String),
    #[error("key file {0} is unreadable: {1}")]
    Unreadable(String, String),
    #[error("key file {0} cannot be written: {1}")]
    Unwritable(String, String),
}

#[derive(Serialize, Deserialize)]
struct KeyFileV1 {
    version: u32,
    key_encryption_key: String,
    username_key: String,
    checkpoint_key: String,
}

/// What a command may do when the key file is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenMissing {
    Create,
    Refuse,
}

impl KeyRing {
    pub fn generate() -> Self {
        Self {
            key_encryption: Key::random(),
            username: Key::random(),
            checkpoint: Key::random(),
        }
    }

    pub fn load(path: &Path, when_missing: WhenMissing) -> Result<Self, KeyFileError> {
        let shown = path.display().to_string();
        match fs::read_to_string(path) {
            Ok(text) => parse(&text)
                .ok_or_else(|| KeyFileError::Unreadable(shown, "not a Writ key file".into())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => match when_missing {
                WhenMissing::Refuse => Err(KeyFileError::Missing(shown)),
                WhenMissing::Create => {
                    let ring = Self::generate();
                    ring.write_new(path)?;
                    Ok(ring)
                }
            },
            Err(err) => Err(KeyFileError::Unreadable(shown, err.to_string())),
        }
    }

    /// Writes a new key file with mode 0600; refuses to replace one, since
    /// losing the old keys makes every sealed field unreadable.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyFileError> {
        let shown = path.display().to_string();
        let file = KeyFileV1 {
            version: 1,
            key_encryption_key: STANDARD.encode(self.key_encryption.0),
            username_key: STANDARD.encode(self.username.0),
            checkpoint_key: STANDARD.encode(self.checkpoint.0),
        };
        let text = serde_json::to_string_pretty(&file)
            .map_err(|e| KeyFileError::Unwritable(shown.clone(), e.to_string()))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .map_err(|e| KeyFileError::Unwritable(shown.clone(), e.to_string()))?;
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut handle = options.open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::AlreadyExists(shown.clone()),
            _ => KeyFileError::Unwritable(shown.clone(), e.to_string()),
        })?;
        handle
            .write_all(text.as_bytes())
            .and_then(|()| handle.sync_all())
            .map_err(|e| KeyFileError::Unwritable(shown, e.to_string()))
    }
}

fn parse(text: &str) -> Option<KeyRing> {
    let file: KeyFileV1 = serde_json::from_str(text).ok()?;
    let decode = |b64: &str| -> Option<Key> {
        let bytes = STANDARD.decode(b64).ok()?;
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Key(array))
    };
    (file.version == 1).then_some(())?;
    Some(KeyRing {
        key_encryption: decode(&file.key_encryption_key)?,
        username: decode(&file.username_key)?,
        checkpoint: decode(&file.checkpoint_key)?,
    })
}

pub fn default_key_file(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_file_is_refused_unless_creation_is_allowed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("keys");
        assert!(matches!(
            KeyRing::load(&path, WhenMissing::Refuse),
            Err(KeyFileError::Missing(_))
        ));
        let created = KeyRing::load(&path, WhenMissing::Create).unwrap_or_else(|e| panic!("{e}"));
        let loaded = KeyRing::load(&path, WhenMissing::Refuse).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(created.username.0, loaded.username.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
        assert!(matches!(
            KeyRing::generate().write_new(&path),
            Err(KeyFileError::AlreadyExists(_))
        ));
    }

    #[test]
    fn a_garbled_key_file_is_unreadable() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("keys");
        fs::write(&path, "{}").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            KeyRing::load(&path, WhenMissing::Create),
            Err(KeyFileError::Unreadable(..))
        ));
    }
}
