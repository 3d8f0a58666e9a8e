//! The caller's address: the TCP peer, unless the peer is a trusted proxy, in which case the
//! first untrusted hop of the one forwarding header the trusted proxies write
//! (`policy.forwarded_header`), read from the right. The other header is ignored: a proxy that
//! appends to `X-Forwarded-For` passes a client's own `Forwarded` through untouched, so
//! believing whichever is present would let the client choose its address. An untrusted
//! peer's forwarding headers are ignored altogether.

use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

pub use crate::config::ForwardedHeader;
use crate::config::PolicyConfig;

pub fn resolve(peer: IpAddr, headers: &HeaderMap, policy: &PolicyConfig) -> IpAddr {
    resolve_with(
        peer,
        headers,
        &policy.trusted_proxies,
        policy.forwarded_header,
    )
}

fn resolve_with(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ForwardedHeader,
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = match header {
        ForwardedHeader::Forwarded => forwarded_for(headers),
        ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        client = *hop;
        if !is_trusted(hop) {
            return *hop;
        }
    }
    client
}

/// Addresses named by `Forwarded: for=` (RFC 7239), left to right. Unparseable entries
/// (obfuscated identifiers, `unknown`) end the list: nothing left of them can be trusted.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for element in headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
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
    out
}

/// Addresses named by `X-Forwarded-For`, left to right; unparseable entries end the list.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut out = Vec::new();
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

    fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
        resolve_with(peer, headers, trusted, ForwardedHeader::XForwardedFor)
    }

    #[test]
    fn only_the_configured_header_is_believed() {
        // Behind a proxy that appends to X-Forwarded-For, the client's own `Forwarded` arrives
        // untouched: it must not choose the address.
        let mut h = headers("x-forwarded-for", "198.51.100.7");
        h.insert(
            "forwarded",
            HeaderValue::from_static("for=10.9.9.9, for=192.0.2.1"),
        );
        let peer = ip("10.0.0.2");
        assert_eq!(
            resolve_with(peer, &h, &trusted(), ForwardedHeader::XForwardedFor),
            ip("198.51.100.7")
        );
        // And the other way round, behind a proxy that writes `Forwarded`.
        let mut h = headers("forwarded", "for=198.51.100.7");
        h.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        assert_eq!(
            resolve_with(peer, &h, &trusted(), ForwardedHeader::Forwarded),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn the_header_names_read_from_configuration() {
        #[derive(serde::Deserialize)]
        struct Wrap {
            header: ForwardedHeader,
        }
        let parse = |text: &str| serde_json::from_str::<Wrap>(text).map(|w| w.header);
        assert_eq!(
            parse(r#"{"header":"x-forwarded-for"}"#).unwrap(),
            ForwardedHeader::XForwardedFor
        );
        assert_eq!(
            parse(r#"{"header":"forwarded"}"#).unwrap(),
            ForwardedHeader::Forwarded
        );
        assert!(parse(r#"{"header":"x-real-ip"}"#).is_err());
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
        assert_eq!(
            resolve_with(ip("fd00::1"), &h, &trusted(), ForwardedHeader::Forwarded),
            ip("2001:db8::7")
        );
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
