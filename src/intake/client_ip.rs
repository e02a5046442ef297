//! Who is calling: the connection's address, or the `X-Forwarded-For` entry added by the
//! nearest proxy paybridge does not trust, when the connection comes from a trusted proxy.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::config::{IpNetwork, canonical};

/// The caller's address, or `None` when a trusted proxy sent an unreadable
/// `X-Forwarded-For` (the caller is then unknown and no allowlist admits it).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNetwork]) -> Option<IpAddr> {
    let trusted = |ip: IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    let peer = canonical(peer);
    if !trusted(peer) {
        return Some(peer);
    }
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        for entry in value.to_str().ok()?.split(',') {
            hops.push(parse_hop(entry.trim())?);
        }
    }
    // Walk from the nearest hop outwards; the first address not in a trusted proxy is the
    // caller. Everything further left was written by the caller and proves nothing.
    match hops.iter().rev().find(|ip| !trusted(**ip)) {
        Some(ip) => Some(*ip),
        None => Some(hops.first().copied().unwrap_or(peer)),
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    entry.parse::<std::net::SocketAddr>().ok().map(|addr| canonical(addr.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap_or_else(|e| panic!("{e:?}")));
        }
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies: Vec<IpNetwork> =
            ["10.0.0.0/8", "192.168.1.1"].iter().map(|n| n.parse().unwrap_or_else(|e| panic!("{e}"))).collect();
        let spoofed = forwarded(&["1.1.1.1"]);
        // An untrusted peer is the caller, whatever it claims.
        assert_eq!(client_ip(ip("8.8.8.8"), &spoofed, &proxies), Some(ip("8.8.8.8")));
        // A trusted proxy: the nearest untrusted hop.
        assert_eq!(client_ip(ip("10.0.0.2"), &spoofed, &proxies), Some(ip("1.1.1.1")));
        let chain = forwarded(&["6.6.6.6, 2.2.2.2", "192.168.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &chain, &proxies), Some(ip("2.2.2.2")));
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.2"), &forwarded(&["[2001:db8::1]:443"]), &proxies),
            Some(ip("2001:db8::1"))
        );
        // Only proxies in the chain: the leftmost; no header: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.2"), &forwarded(&["10.9.9.9"]), &proxies), Some(ip("10.9.9.9")));
        assert_eq!(client_ip(ip("10.0.0.2"), &HeaderMap::new(), &proxies), Some(ip("10.0.0.2")));
        // Garbage from a trusted proxy: unknown caller.
        assert_eq!(client_ip(ip("10.0.0.2"), &forwarded(&["1.1.1.1, nonsense"]), &proxies), None);
        assert_eq!(client_ip(ip("10.0.0.2"), &forwarded(&[""]), &proxies), None);
    }
}
