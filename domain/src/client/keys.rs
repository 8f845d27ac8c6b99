//! How a client authenticates, and the public keys of one that signs its
//! own assertions (`private_key_jwt`, RFC 7523 §2.2, OpenID Connect Core
//! §9): checked here so that no registration path can store a private key
//! or a `jwks_uri` Writ would not fetch.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

use serde_json::Value;

use super::ClientError;

/// RFC 7591 `token_endpoint_auth_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::ClientSecretBasic,
            Self::ClientSecretPost,
            Self::None,
            Self::PrivateKeyJwt,
        ]
        .into_iter()
        .find(|method| method.as_str() == raw)
    }
}

/// More keys than this is not a client's key set but a way to make every
/// authentication try them all.
const MAX_KEYS: usize = 10;
const MAX_URI_LEN: usize = 2048;
/// Private-key members of RFC 7518 §6; a key set holding one is refused.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A `jwks` value: 1–10 public keys of the asymmetric kinds Writ verifies.
pub fn check_jwks(jwks: &Value) -> Result<(), ClientError> {
    let bad = |why: &str| Err(ClientError::UnusableKeys(why.to_owned()));
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return bad("jwks must be an object with a keys array");
    };
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return bad("jwks must hold between 1 and 10 keys");
    }
    for key in keys {
        let Some(members) = key.as_object() else {
            return bad("every key must be a JSON object");
        };
        if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
            return bad("jwks must hold public keys only");
        }
        match members.get("kty").and_then(Value::as_str) {
            Some("EC" | "OKP" | "RSA") => {}
            _ => return bad("keys must be EC, OKP or RSA public keys"),
        }
    }
    Ok(())
}

/// A `jwks_uri` Writ may fetch: https, or http on a loopback address (for
/// development), without a fragment or credentials (R57).
pub fn check_jwks_uri(uri: &str) -> Result<(), ClientError> {
    if is_server_side_uri(uri) {
        return Ok(());
    }
    Err(ClientError::UnusableKeys(
        "jwks_uri must be https, or http on a loopback address, without a fragment, and not a private, link-local or metadata address".to_owned(),
    ))
}

/// A URL Writ itself calls (a `jwks_uri`, a `backchannel_logout_uri`):
/// https, or http on a loopback address (for development), without a
/// fragment or credentials, and not an address on the network behind Writ
/// (R57). Parsed as the caller will parse it (WHATWG URL), so every
/// spelling of an address (`167772161`, `0xa.0.0.1`, `%31%30.0.0.1`) is
/// judged as the address it is; a host name is checked again, resolved,
/// when it is called.
pub fn is_server_side_uri(uri: &str) -> bool {
    if uri.len() > MAX_URI_LEN || uri.contains('#') {
        return false;
    }
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(v4)) if is_reachable_address(IpAddr::V4(v4)) => v4.is_loopback(),
        Some(url::Host::Ipv6(v6)) if is_reachable_address(IpAddr::V6(v6)) => v6.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        _ => return false,
    };
    match url.scheme() {
        "https" => true,
        "http" => loopback,
        _ => false,
    }
}

/// Whether Writ may connect to `ip` on a client's behalf: loopback (for
/// development), or a public unicast address; never a private, link-local
/// (cloud metadata), shared, benchmarking, reserved, documentation,
/// multicast or unspecified one, nor an IPv6 form that tunnels to IPv4
/// (NAT64, 6to4, Teredo, IPv4-compatible), which an IPv6 allow-list of
/// global unicast space keeps out.
pub fn is_reachable_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || !(v4.is_private()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_broadcast()
                    || v4.is_multicast()
                    || v4.is_documentation()
                    || (a == 100 && (64..128).contains(&b))
                    || (a == 198 && (18..20).contains(&b))
                    || (a == 192 && b == 0 && c == 0)
                    || a >= 240
                    || a == 0)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_reachable_address(IpAddr::V4(v4)),
            None => {
                let [first, second, ..] = v6.segments();
                v6.is_loopback()
                    || ((first & 0xe000) == 0x2000
                        && !(first == 0x2001 && second == 0)
                        && !(first == 0x2001 && second == 0x0db8)
                        && first != 0x2002)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_public_asymmetric_keys_are_kept() {
        let ec = json!({"kty": "EC", "crv": "P-256", "x": "x", "y": "y"});
        assert!(check_jwks(&json!({"keys": [ec]})).is_ok());
        for refused in [
            json!({"keys": []}),
            json!([ec]),
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "d": "secret"}]}),
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            json!({"keys": vec![ec.clone(); 11]}),
        ] {
            assert!(check_jwks(&refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_jwks_uri_is_https_or_loopback_http() {
        for good in [
            "https://app.example/jwks.json",
            "http://127.0.0.1:8123/jwks",
            "http://[::1]/jwks",
            "http://localhost:9/jwks",
        ] {
            assert!(check_jwks_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "http://app.example/jwks",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost.evil.example/jwks",
            "http://127.0.0.1@evil.example/jwks",
            "https://user:pw@app.example/jwks",
            "https://app.example/jwks#frag",
            "ftp://app.example/jwks",
            "https://",
        ] {
            assert!(check_jwks_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_server_side_uri_never_names_the_network_behind_writ() {
        for refused in [
            "https://10.0.0.1/logout",
            "https://192.168.1.1/logout",
            "https://172.16.0.9/logout",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/logout",
            "https://0.0.0.0/logout",
            "https://[fd00::1]/logout",
            "https://[fe80::1]:8443/logout",
            "https://[::ffff:10.0.0.1]/logout",
            "http://10.0.0.1/logout",
            "https://167772161/logout",
            "https://0xa9fe.0xa9fe/latest",
            "https://%31%30.0.0.1/logout",
            "https://[64:ff9b::a00:1]/logout",
            "https://[2002:a00:1::]/logout",
            "https://[::10.0.0.1]/logout",
            "https://198.18.0.1/logout",
            "https://240.0.0.1/logout",
            "https://:443/logout",
            "https://user:pw@rp.example/logout",
            "http://rp.example/logout",
            "ftp://rp.example/logout",
        ] {
            assert!(!is_server_side_uri(refused), "{refused}");
        }
        for allowed in [
            "https://rp.example/logout",
            "https://203.0.114.7/logout",
            "http://127.0.0.1:9/logout",
            "https://[2001:4860::1]/logout",
        ] {
            assert!(is_server_side_uri(allowed), "{allowed}");
        }
    }
}
