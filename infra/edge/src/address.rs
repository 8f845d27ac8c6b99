//! The client's address, which the throttles count failures under. It is
//! the TCP peer unless that peer is a configured trusted proxy: only then
//! is the address the proxy reports believed (RFC 7239 `Forwarded`, else
//! `X-Forwarded-For`). Anyone can send those headers; believed from
//! everyone, they would let a stranger pick the address a failure is
//! counted under (R73).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed: addresses or CIDR
/// ranges (`trusted_proxies`). Empty by default: no header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let nets = entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted proxy {entry:?} is not an address or CIDR range"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(Arc::new(nets)))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&canonical(ip)))
    }

    /// The client's address: the peer, or, when the peer is trusted, the
    /// nearest address in the forwarding chain that is not itself a trusted
    /// proxy (the chain's right end is the hop closest to us; entries left
    /// of an untrusted one may be made up by the client).
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let chain = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
        let Some(chain) = chain else {
            return Some(peer);
        };
        let mut nearest = peer;
        for hop in chain.into_iter().rev() {
            nearest = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        Some(nearest)
    }
}

/// An IPv4 peer seen on a dual-stack socket is the same client as its
/// plain IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Every value of the header, in order, split at commas; `None` when the
/// header is absent or any hop is not an address (then nothing is
/// believed and the peer stands).
fn hops<'a>(headers: &'a HeaderMap, name: &str) -> Option<Vec<&'a str>> {
    let mut hops = Vec::new();
    for value in headers.get_all(name) {
        hops.extend(value.to_str().ok()?.split(',').map(str::trim));
    }
    (!hops.is_empty()).then_some(hops)
}

fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    hops(headers, "x-forwarded-for")?
        .into_iter()
        .map(|hop| hop.parse().ok().map(canonical))
        .collect()
}

/// RFC 7239 §4-6: `for=192.0.2.60`, `for="[2001:db8::1]:4711"`; an
/// obfuscated or `unknown` node makes the whole header unusable.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut addresses = Vec::new();
    for element in hops(headers, "forwarded")? {
        let node = element
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| key.eq_ignore_ascii_case("for"))
            .map(|(_, value)| value.trim_matches('"'))?;
        addresses.push(canonical(parse_node(node)?));
    }
    Some(addresses)
}

fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.parse()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The resolved client address of a request, put there by
/// [`resolve_client_address`]; without that layer, the TCP peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(resolved) = parts.extensions.get::<ClientAddress>() {
            return Ok(*resolved);
        }
        Ok(Self(peer(parts)))
    }
}

fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Middleware: resolves the client address once per request, before any
/// handler reads it.
pub async fn resolve_client_address(
    axum::extract::State(trusted): axum::extract::State<TrustedProxies>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (mut parts, body) = request.into_parts();
    let address = trusted.client_address(peer(&parts), &parts.headers);
    parts.extensions.insert(ClientAddress(address));
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                *name,
                HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        headers
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let trusted = TrustedProxies::default();
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            trusted.client_address(Some(ip("198.51.100.7")), &spoofed),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_nearest_untrusted_hop() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap_or_default();
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(
            trusted.client_address(Some(ip("127.0.0.1")), &chain),
            Some(ip("203.0.113.9")),
            "1.2.3.4 is what the client wrote; 203.0.113.9 is who connected to our proxy"
        );
        let split = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "10.2.2.2"),
        ]);
        assert_eq!(
            trusted.client_address(Some(ip("127.0.0.1")), &split),
            Some(ip("198.51.100.1"))
        );
        assert_eq!(
            trusted.client_address(Some(ip("127.0.0.1")), &HeaderMap::new()),
            Some(ip("127.0.0.1")),
            "no header: the proxy itself"
        );
        let garbage = headers(&[("x-forwarded-for", "not-an-address")]);
        assert_eq!(
            trusted.client_address(Some(ip("127.0.0.1")), &garbage),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn rfc_7239_forwarded_is_read_and_preferred() {
        let trusted = TrustedProxies::parse(&["127.0.0.1"]).unwrap_or_default();
        let both = headers(&[
            (
                "forwarded",
                "for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\";proto=https",
            ),
            ("x-forwarded-for", "203.0.113.1"),
        ]);
        assert_eq!(
            trusted.client_address(Some(ip("127.0.0.1")), &both),
            Some(ip("2001:db8:cafe::17"))
        );
        let mapped = Some(ip("::ffff:127.0.0.1"));
        let v4 = headers(&[("forwarded", "for=192.0.2.60:80;by=203.0.113.43")]);
        assert_eq!(trusted.client_address(mapped, &v4), Some(ip("192.0.2.60")));
    }

    #[test]
    fn malformed_proxy_settings_are_refused() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(&["proxy.example"]).is_err());
    }
}
