//! Parsed values: once constructed they are valid, so aggregates never
//! re-check them. Deserialisation trusts the log, which only ever holds
//! values that were parsed on the way in.

use std::collections::BTreeSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

mod display;
pub mod user_code;
pub use display::displayable;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("redirect URI {0:?} is not allowed: {1}")]
    RedirectUri(String, &'static str),
    #[error("scope {0:?} contains a character RFC 6749 §3.3 does not allow")]
    Scope(String),
    #[error("code challenge must be 43 base64url characters (RFC 7636 §4.2)")]
    CodeChallenge,
    #[error("resource URI {0:?} is not allowed: {1}")]
    ResourceUri(String, &'static str),
}

/// A JWT access token's entry in a status list: the list (a `StatusList`
/// stream) and the index, which no other token of the list ever has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSlot {
    pub list: String,
    pub idx: u32,
}

/// A registered redirect URI, compared by exact string match (RFC 9700 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RedirectUri(String);

const MAX_URI_LEN: usize = 2000;

impl RedirectUri {
    /// RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §4.1: absolute, no fragment,
    /// no script-bearing schemes, https unless it points at loopback.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let refuse = |why| Err(ValueError::RedirectUri(raw.to_owned(), why));
        if raw.is_empty() || raw.len() > MAX_URI_LEN {
            return refuse("it must be between 1 and 2000 characters");
        }
        if raw.chars().any(char::is_whitespace) || !displayable(raw) {
            return refuse("it contains whitespace, control or invisible format characters");
        }
        if raw.contains('#') {
            return refuse("it contains a fragment");
        }
        let Some((scheme, rest)) = raw.split_once(':').filter(|(s, _)| is_scheme(s)) else {
            return refuse("it is not an absolute URI");
        };
        match scheme.to_ascii_lowercase().as_str() {
            "javascript" | "data" | "vbscript" | "file" => refuse("the scheme can run code"),
            "https" => match host_of(rest) {
                Some(host) if !host.is_empty() => Ok(Self(raw.to_owned())),
                _ => refuse("it has no valid host"),
            },
            "http" => match host_of(rest) {
                Some(host) if is_loopback_host(host) => Ok(Self(raw.to_owned())),
                Some(_) => refuse("plain http is only allowed for loopback addresses"),
                None => refuse("it has no valid host"),
            },
            // Private-use schemes (RFC 8252 §7.1) must contain a dot, so they
            // look like reversed domain names and not like `about` or `blob`.
            _ if scheme.contains('.') => Ok(Self(raw.to_owned())),
            _ => refuse("only https, loopback http, or reversed-domain schemes are allowed"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_loopback(&self) -> bool {
        self.0
            .strip_prefix("http:")
            .and_then(host_of)
            .is_some_and(is_loopback_host)
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(scheme: &str) -> bool {
    scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// An RFC 8707 resource indicator a client answers for as a resource
/// server, compared by exact string match like the `aud` it is matched to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceUri(String);

impl ResourceUri {
    /// RFC 8707 §2: an absolute URI (RFC 3986 §4.3) without a fragment.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let refuse = |why| Err(ValueError::ResourceUri(raw.to_owned(), why));
        if raw.is_empty() || raw.len() > MAX_URI_LEN {
            return refuse("it must be between 1 and 2000 characters");
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return refuse("it contains whitespace or control characters");
        }
        if raw.contains('#') {
            return refuse("it contains a fragment");
        }
        match raw.split_once(':') {
            Some((scheme, rest)) if is_scheme(scheme) && !rest.is_empty() => {
                Ok(Self(raw.to_owned()))
            }
            _ => refuse("it is not an absolute URI"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host of `//authority/...`, or `None` when the authority is missing or
/// carries userinfo (`http://127.0.0.1@evil.example` must never pass).
fn host_of(after_scheme: &str) -> Option<&str> {
    let authority_and_rest = after_scheme.strip_prefix("//")?;
    let end = authority_and_rest
        .find(['/', '?'])
        .unwrap_or(authority_and_rest.len());
    let authority = &authority_and_rest[..end];
    if authority.contains(['@', '\\']) {
        return None;
    }
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, port) = bracketed.split_once(']')?;
        return port_ok(port).then_some(host);
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, format!(":{port}")),
        None => (authority, String::new()),
    };
    port_ok(&port).then_some(host)
}

fn port_ok(port: &str) -> bool {
    match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => {
            !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

fn is_loopback_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "::1" | "localhost")
}

/// A set of scope tokens (RFC 6749 §3.3), kept sorted so events and rows
/// are deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let mut set = BTreeSet::new();
        for token in raw.split(' ').filter(|t| !t.is_empty()) {
            let valid = token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
            if !valid {
                return Err(ValueError::Scope(token.to_owned()));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.union(&other.0).cloned().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined: Vec<&str> = self.iter().collect();
        f.write_str(&joined.join(" "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    RefreshToken,
    Password,
    /// RFC 8628: a device without a browser asks a person to approve it
    /// on another one.
    DeviceCode,
    /// RFC 8693: a service trades a token it was given for one to call
    /// another service with, on the same person's behalf.
    TokenExchange,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
            Self::Password => "password",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::AuthorizationCode,
            Self::ClientCredentials,
            Self::RefreshToken,
            Self::Password,
            Self::DeviceCode,
            Self::TokenExchange,
        ]
        .into_iter()
        .find(|grant| grant.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationType {
    #[default]
    Web,
    Native,
}

/// id_token signature algorithms (OpenID Connect Core §2); never `none`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdTokenAlg {
    #[default]
    RS256,
    ES256,
    EdDSA,
}

impl IdTokenAlg {
    pub const ALL: [Self; 3] = [Self::RS256, Self::ES256, Self::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFormat {
    #[default]
    Jwt,
    Opaque,
}

/// Ciphertext of a personal field, sealed by infra under the subject's data
/// key. The domain never sees the plaintext; it only carries the blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(pub String);

/// Hex SHA-256 of a secret, token or code. Raw values never enter events.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(pub String);

/// RFC 7636 S256 code challenge; `plain` is refused before this exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    pub fn parse_s256(raw: &str) -> Result<Self, ValueError> {
        let valid = raw.len() == 43
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid
            .then(|| Self(raw.to_owned()))
            .ok_or(ValueError::CodeChallenge)
    }

    /// RFC 7636 §4.1 verifier syntax and §4.6 S256 comparison.
    pub fn is_satisfied_by(&self, verifier: &str) -> bool {
        let syntax_ok = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        syntax_ok && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == self.0
    }
}

#[cfg(test)]
mod tests;
