//! The caller's address: the TCP peer, unless the peer is a trusted proxy, in which case the
//! first untrusted hop of `Forwarded` / `X-Forwarded-For`, read from the right. An untrusted
//! peer's forwarding headers are ignored, so nobody can claim another address by sending them.

use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_for(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        client = *hop;
        if !is_trusted(hop) {
            return *hop;
        }
    }
    client
}

/// Addresses named by `Forwarded: for=` (RFC 7239), else `X-Forwarded-For`, left to right.
/// Unparseable entries (obfuscated identifiers, `unknown`) end the list: nothing left of them
/// can be trusted.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let mut out = Vec::new();
    if !forwarded.is_empty() {
        for element in forwarded.iter().flat_map(|v| v.split(',')) {
            let value = element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for")
                    .then_some(value.trim().trim_matches('"'))
            });
            match value.and_then(parse_node) {
                Some(ip) => out.push(ip),
                None => out.clear(),
            }
        }
        return out;
    }
    for value in headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for item in value.split(',') {
            match parse_node(item.trim()) {
                Some(ip) => out.push(ip),
                None => out.clear(),
            }
        }
    }
    out
}

/// `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`, `[2001:db8::1]:443`, `2001:db8::1`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = text.strip_prefix('[') {
        let inner = rest.split(']').next()?;
        return inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    let (host, _port) = text.rsplit_once(':')?;
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn trusted() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]
    }

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_static(value));
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let h = headers("x-forwarded-for", "203.0.113.9");
        assert_eq!(
            resolve(ip("198.51.100.7"), &h, &trusted()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let h = headers("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.1.1");
        // 6.6.6.6 was written by the client itself: the first untrusted hop from the right wins.
        assert_eq!(resolve(ip("10.0.0.2"), &h, &trusted()), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_header_with_ports_and_ipv6() {
        let h = headers(
            "forwarded",
            "for=198.51.100.1;proto=https, for=\"[2001:db8::7]:4711\"",
        );
        assert_eq!(resolve(ip("fd00::1"), &h, &trusted()), ip("2001:db8::7"));
    }

    #[test]
    fn mapped_addresses_are_canonical() {
        assert_eq!(
            resolve(
                ip("::ffff:10.0.0.2"),
                &headers("x-forwarded-for", "192.0.2.5"),
                &trusted()
            ),
            ip("192.0.2.5")
        );
        assert_eq!(
            resolve(ip("::ffff:192.0.2.8"), &HeaderMap::new(), &trusted()),
            ip("192.0.2.8")
        );
    }

    #[test]
    fn garbage_hops_stop_the_walk() {
        let h = headers("x-forwarded-for", "203.0.113.9, unknown, 10.1.1.1");
        assert_eq!(resolve(ip("10.0.0.2"), &h, &trusted()), ip("10.1.1.1"));
    }
}
