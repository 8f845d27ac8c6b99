//! Calls Writ makes on a client's behalf to a URL the client registered (a
//! `jwks_uri`, a `backchannel_logout_uri`, a Shared Signals push endpoint):
//! with a timeout, no redirects and no proxy, and never to an address on
//! the network behind Writ (R57). A registered URL naming such an address
//! literally is refused when it is registered; a host name is resolved
//! here, and only the public (or loopback) addresses it resolves to are
//! connected to.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use writ_domain::client::is_reachable_address;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves names, keeping only addresses Writ may connect to.
struct ReachableOnly;

impl reqwest::dns::Resolve for ReachableOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| is_reachable_address(address.ip()))
                .collect();
            if found.is_empty() {
                return Err("the host resolves to no address Writ may call".into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The one client for such calls. Built on first use, not at start-up:
/// most `writ` commands never make one. A client that cannot be built
/// fails each call; it never falls back to one with redirects or proxies.
pub fn client() -> Result<reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .connect_timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .dns_resolver(Arc::new(ReachableOnly))
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// The URL, if Writ may call it: an address literal (which skips the
/// resolver) must itself be one Writ may connect to.
pub fn callable(uri: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(uri).map_err(|e| e.to_string())?;
    // The parsed host: the URL parser has already turned every spelling of
    // an IPv4 address (`2130706433`, `0x7f.1`) into dotted form.
    let host = url.host_str().ok_or("the URL names no host")?;
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok();
    if literal.is_some_and(|ip| !is_reachable_address(ip)) {
        return Err("the URL names an address Writ may not call".into());
    }
    Ok(url)
}

/// POSTs `fields` as a form and answers with the status, or why there was
/// none. The answer's body is not read.
pub async fn post_form(uri: &str, fields: &[(&str, &str)]) -> Result<u16, String> {
    let url = callable(uri)?;
    let client = client()?;
    let response = client
        .post(url)
        .form(fields)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    Ok(response.status().as_u16())
}

/// POSTs one Security Event Token (RFC 8935 §2) with the receiver's
/// `Authorization` value, if it gave one, and answers with the status.
/// The answer's body is not read: only the status decides (§2.2, §2.3).
pub async fn post_set(uri: &str, authorization: Option<&str>, set: String) -> Result<u16, String> {
    let url = callable(uri)?;
    let client = client()?;
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/secevent+jwt")
        .header(reqwest::header::ACCEPT, "application/json")
        .body(set);
    if let Some(value) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_and_loopback_addresses_are_reachable() {
        for ok in ["127.0.0.1", "::1", "93.184.216.34", "2606:2800:220:1::1"] {
            let ip = ok.parse().unwrap_or_else(|e| panic!("{e}"));
            assert!(is_reachable_address(ip), "{ok}");
        }
        for refused in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            let ip = refused.parse().unwrap_or_else(|e| panic!("{e}"));
            assert!(!is_reachable_address(ip), "{refused}");
        }
    }

    #[test]
    fn every_spelling_of_a_private_address_is_refused_before_any_call() {
        for refused in [
            "https://10.0.0.1/x",
            "https://167772161/x",
            "https://0xa.0.0.1/x",
            "https://[::ffff:a00:1]/x",
            "https://169.254.169.254/latest/meta-data",
        ] {
            assert!(callable(refused).is_err(), "{refused}");
        }
        assert!(callable("http://127.0.0.1:9/x").is_ok());
        assert!(callable("https://rp.example/x").is_ok());
    }
}
