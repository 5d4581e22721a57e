//! The client's address for throttles, key IP allowlists, audit rows and request logs.
//!
//! The TCP peer is the client unless it is one of `BURNCLOUD_TRUSTED_PROXIES`. Only then is the
//! forwarding header believed: `X-Forwarded-For` (or, when there is none, RFC 7239 `Forwarded`)
//! is read from the right, skipping trusted hops, and the first untrusted address is the client.
//! Reading from the right matters: a client can put anything on the left of the list, but each
//! trusted proxy appends the address it saw. A peer that is not trusted cannot move its address
//! with a header at all, so a tenant cannot step past a key's IP allowlist or shake off a
//! throttle by sending `X-Forwarded-For`.
//!
//! A middleware ([`resolve`]) works the address out once per request and stores it in the
//! request's extensions as [`ClientIp`], which handlers take as an extractor.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::domain::ip_allowlist::IpBlock;

/// The client's address, when the server knows it (tests and Unix sockets may not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

/// The proxies whose forwarding headers are believed (none by default).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Arc<Vec<IpBlock>>);

impl TrustedProxies {
    pub fn new(blocks: Vec<IpBlock>) -> Self {
        Self(Arc::new(blocks))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    /// The client behind `peer`, given the request's headers.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let mut client = peer.map(canonical)?;
        if !self.trusts(client) {
            return Some(client);
        }
        let hops = forwarded_hops(headers);
        for hop in hops.iter().rev() {
            // A hop that does not parse was written by the last trusted proxy's client: stop at
            // the proxy rather than guess.
            let Some(ip) = hop else { return Some(client) };
            client = canonical(*ip);
            if !self.trusts(client) {
                return Some(client);
            }
        }
        // Every hop is trusted (an internal health check, say): the leftmost is the client.
        Some(client)
    }
}

pub use crate::domain::ip_allowlist::canonical;

/// The forwarded-for list, leftmost (the original client, as claimed) first; `None` for an entry
/// that is not an address (`unknown`, an obfuscated identifier, garbage). `X-Forwarded-For` wins
/// over `Forwarded`: proxies commonly append to the first and pass a client's copy of the second
/// through untouched.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff.iter().flat_map(|v| v.split(',')).map(|hop| parse_node(hop.trim())).collect();
    }
    values("forwarded")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| parse_node(value.trim().trim_matches('"')))
        })
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:567`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:567`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    node.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).and_then(|inner| inner.parse().ok())
}

/// Middleware: works out the client's address and stores it as [`ClientIp`].
pub async fn resolve(trusted: TrustedProxies, mut request: Request) -> Request {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = trusted.client(peer, request.headers());
    request.extensions_mut().insert(ClientIp(client));
    request
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(of(parts))
    }
}

/// The request's client address: what [`resolve`] found, else the TCP peer (a router built
/// without the middleware, as some tests do, trusts no header).
pub fn of(parts: &Parts) -> ClientIp {
    parts
        .extensions
        .get::<ClientIp>()
        .copied()
        .unwrap_or_else(|| ClientIp(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| canonical(c.0.ip()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| IpBlock::parse(s).unwrap()).collect())
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[("x-forwarded-for", "203.0.113.7"), ("forwarded", "for=203.0.113.8")]);
        assert_eq!(proxies(&[]).client(Some(ip("192.0.2.1")), &h), Some(ip("192.0.2.1")));
        assert_eq!(proxies(&["10.0.0.0/8"]).client(Some(ip("192.0.2.1")), &h), Some(ip("192.0.2.1")));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_a_forged_prefix_does_not_count() {
        let trusted = proxies(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let peer = Some(ip("10.0.0.2"));
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(trusted.client(peer, &h), Some(ip("203.0.113.7")));
        // The client sent `X-Forwarded-For: 1.1.1.1`; the proxy appended what it saw.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.9")]);
        assert_eq!(trusted.client(peer, &h), Some(ip("203.0.113.7")));
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(trusted.client(peer, &h), Some(ip("203.0.113.7")), "repeated headers are one list");
        let h = headers(&[("x-forwarded-for", "garbage, 203.0.113.7")]);
        assert_eq!(trusted.client(peer, &h), Some(ip("203.0.113.7")));
        let h = headers(&[("x-forwarded-for", "203.0.113.7, garbage")]);
        assert_eq!(trusted.client(peer, &h), Some(ip("10.0.0.2")), "no guessing past a bad hop");
        let h = headers(&[]);
        assert_eq!(trusted.client(peer, &h), Some(ip("10.0.0.2")));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let trusted = proxies(&["127.0.0.1"]);
        let peer = Some(ip("127.0.0.1"));
        let h = headers(&[("forwarded", "for=192.0.2.60;proto=https, for=\"[2001:db8::1]:4711\"")]);
        assert_eq!(trusted.client(peer, &h), Some(ip("2001:db8::1")));
        let h = headers(&[("forwarded", "for=192.0.2.60"), ("x-forwarded-for", "198.51.100.2")]);
        assert_eq!(trusted.client(peer, &h), Some(ip("198.51.100.2")));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(trusted.client(peer, &h), Some(ip("127.0.0.1")));
    }

    #[test]
    fn mapped_addresses_are_plain_ipv4() {
        assert_eq!(proxies(&[]).client(Some(ip("::ffff:192.0.2.1")), &headers(&[])), Some(ip("192.0.2.1")));
        let trusted = proxies(&["127.0.0.1"]);
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.7")]);
        assert_eq!(trusted.client(Some(ip("::ffff:127.0.0.1")), &h), Some(ip("203.0.113.7")));
    }
}
