//! Host patterns for a domain trust policy: `app.example.com` names one host,
//! `*.example.com` any host below `example.com` (not `example.com` itself).

/// Whether `pattern` is a host name, or `*.` and a host name with at least two labels (so a
/// pattern cannot trust a whole top-level domain).
pub fn valid(pattern: &str) -> bool {
    let (name, wildcard) = match pattern.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (pattern, false),
    };
    let labels: Vec<&str> = name.split('.').collect();
    !name.is_empty()
        && name.len() <= 253
        && (!wildcard || labels.len() >= 2)
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether `host` is matched by `pattern` (ASCII case-insensitive; a trailing dot ignored).
pub fn matches(pattern: &str, host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    match pattern.strip_prefix("*.") {
        // Bytes, so a host with multi-byte characters cannot split inside one.
        Some(domain) => {
            let (host, domain) = (host.as_bytes(), domain.as_bytes());
            host.len() > domain.len() + 1 && {
                let (head, tail) = host.split_at(host.len() - domain.len());
                head.ends_with(b".") && tail.eq_ignore_ascii_case(domain)
            }
        }
        None => host.eq_ignore_ascii_case(pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_name_a_host_or_the_hosts_below_a_domain() {
        assert!(valid("app.example.com"));
        assert!(valid("*.example.com"));
        assert!(valid("localhost"));
        for bad in [
            "",
            "*",
            "*.com",
            "a..b",
            "-a.com",
            "a b.com",
            "*.*.com",
            "https://a.com",
        ] {
            assert!(!valid(bad), "{bad}");
        }
        assert!(matches("app.example.com", "APP.example.com"));
        assert!(matches("app.example.com", "app.example.com."));
        assert!(!matches("app.example.com", "evil.app.example.com"));
        assert!(matches("*.example.com", "a.example.com"));
        assert!(matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", "badexample.com"));
        assert!(!matches("*.example.com", "example.com.evil.net"));
    }
}
