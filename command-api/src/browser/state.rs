//! Browser state without server-side storage: a random binding cookie per
//! browser, CSRF tokens derived from it, and authorization requests sealed
//! (XChaCha20-Poly1305) with the binding as associated data, so a form or
//! link replayed from another browser opens nothing (R46). Anonymous
//! traffic therefore writes nothing to the log (ADR 0012).

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Serialize;
use writ_infra::crypto::{self, constant_time_eq, hmac_hex, Key, KEY_LEN};
use writ_infra::keys::KeyRing;

/// Ties pending requests and CSRF tokens to one browser.
pub const BROWSER_COOKIE: &str = "writ_browser";
/// The signed-in session; the log knows only its SHA-256.
pub const SESSION_COOKIE: &str = "writ_session";

#[derive(Clone)]
pub struct BrowserKey(Key);

impl BrowserKey {
    /// Derived from the key-encryption key, so every process sharing the
    /// key file opens what another sealed.
    pub fn derive(ring: &KeyRing) -> Self {
        let hex = hmac_hex(&ring.key_encryption, "writ browser state v1");
        let mut bytes = [0u8; KEY_LEN];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or_default();
        }
        Self(Key(bytes))
    }

    /// The synchronizer token for forms shown to this browser.
    pub fn csrf(&self, binding: &str) -> String {
        hmac_hex(&self.0, &format!("csrf\n{binding}"))
    }

    pub fn csrf_ok(&self, binding: &str, presented: Option<&str>) -> bool {
        presented
            .is_some_and(|token| constant_time_eq(token.as_bytes(), self.csrf(binding).as_bytes()))
    }

    /// Seals `value` for this browser and one purpose (login, consent), so
    /// a login form's request cannot be posted as a consent.
    pub fn seal<T: Serialize>(&self, binding: &str, purpose: &str, value: &T) -> String {
        let json = serde_json::to_vec(value).unwrap_or_default();
        crypto::seal(&self.0, &format!("{purpose}\n{binding}"), &json)
    }

    pub fn open<T: DeserializeOwned>(
        &self,
        binding: &str,
        purpose: &str,
        sealed: Option<&str>,
    ) -> Option<T> {
        let bytes = crypto::open(&self.0, &format!("{purpose}\n{binding}"), sealed?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A cookie's value from the request, if well-formed ([`writ_wire::cookie`]).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    writ_wire::cookie::value(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok()),
        name,
    )
}

/// The browser's binding, and whether it is new (so the response sets it).
pub fn binding(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, BROWSER_COOKIE) {
        Some(existing) => (existing, false),
        None => (crypto::random_token(), true),
    }
}

/// `HttpOnly`, `SameSite=Lax`, `Secure` behind an https issuer; `max_age`
/// zero deletes the cookie.
pub fn set_cookie(
    response: &mut Response,
    name: &str,
    value: &str,
    secure: bool,
    max_age: Option<u64>,
) {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        cookie.push_str("; Secure");
    }
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_request_opens_only_in_its_browser_and_for_its_purpose() {
        let key = BrowserKey::derive(&KeyRing::generate());
        let sealed = key.seal("browser-a", "login", &"payload");
        assert_eq!(
            key.open::<String>("browser-a", "login", Some(&sealed)),
            Some("payload".to_owned())
        );
        assert_eq!(
            key.open::<String>("browser-b", "login", Some(&sealed)),
            None
        );
        assert_eq!(
            key.open::<String>("browser-a", "consent", Some(&sealed)),
            None
        );
        assert!(key.csrf_ok("browser-a", Some(&key.csrf("browser-a"))));
        assert!(!key.csrf_ok("browser-b", Some(&key.csrf("browser-a"))));
        assert!(!key.csrf_ok("browser-a", None));
    }
}
