//! Hosts: parsing the `host` of an Ingress rule, normalising the Host header of a request, and the
//! one-label wildcard rule.
//!
//! Kubernetes compares hosts case-insensitively and lets `*.example.com` stand for exactly one further
//! DNS label: `a.example.com` matches, `a.b.example.com` and `example.com` do not.

/// Longest DNS name we accept (RFC 1035: 253 characters in text form). Longer Host headers match no
/// host rule; this bound also sizes the stack buffer the lookup lowercases into.
pub const MAX_HOST_LEN: usize = 253;

/// The host of an Ingress rule, validated and lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// `www.example.com`.
    Exact(String),
    /// `*.example.com`, stored without the `*.`: `example.com`.
    Wildcard(String),
}

impl HostPattern {
    /// Parse the `host` of an Ingress rule. `Err` carries a message for the diagnostic.
    ///
    /// Accepted: lowercase-able DNS names of non-empty labels made of letters, digits, `-` and `_`, with
    /// an optional leading `*.` label. Rejected: a `*` anywhere else, ports, IP literals with `:`, empty
    /// labels, names longer than [`MAX_HOST_LEN`]. (The API server rejects these too; manifests may not.)
    pub fn parse(host: &str) -> Result<Self, String> {
        let lower = host.to_ascii_lowercase();
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        if name.is_empty() || lower.len() > MAX_HOST_LEN {
            return Err(format!(
                "invalid host {host:?}: empty or longer than {MAX_HOST_LEN} characters"
            ));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(format!("invalid host {host:?}: empty DNS label"));
            }
            if let Some(c) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            {
                let hint = if c == '*' {
                    " (a wildcard must be the whole first label: *.example.com)"
                } else {
                    ""
                };
                return Err(format!(
                    "invalid host {host:?}: character {c:?} not allowed{hint}"
                ));
            }
        }
        let name = name.to_owned();
        Ok(if wildcard {
            HostPattern::Wildcard(name)
        } else {
            HostPattern::Exact(name)
        })
    }

    /// The form written in the Ingress (lowercased): `www.example.com` or `*.example.com`.
    pub fn to_host_string(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Wildcard(suffix) => format!("*.{suffix}"),
        }
    }

    /// Whether a lowercased request host (no port) matches this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => wildcard_suffix(host) == Some(suffix.as_str()),
        }
    }
}

/// For a request host `a.example.com`, the part a `*.` wildcard would have to equal: `example.com`.
/// `None` when the first label is empty or there is no dot (a wildcard needs one full label plus a
/// suffix).
#[inline]
pub fn wildcard_suffix(host: &str) -> Option<&str> {
    let dot = host.find('.')?;
    if dot == 0 || dot + 1 >= host.len() {
        return None;
    }
    Some(&host[dot + 1..])
}

/// Strip the port from a Host header value: `example.com:8080` → `example.com`, `[::1]:80` → `[::1]`,
/// `[::1]` → `[::1]`. A trailing dot (`example.com.`, the fully-qualified form) is removed as well, so
/// that it matches the rule for `example.com`. Does not lowercase (see [`lowercase_into`]).
#[inline]
pub fn strip_port(host: &str) -> &str {
    let bare = if host.starts_with('[') {
        // IPv6 literal: the port, if any, follows the closing bracket.
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.find(':') {
            Some(colon) => &host[..colon],
            None => host,
        }
    };
    bare.strip_suffix('.').unwrap_or(bare)
}

/// ASCII-lowercase `host` into `buf` without allocating; `None` if it does not fit (longer than any
/// valid DNS name, so it cannot match a host rule).
#[inline]
pub fn lowercase_into<'b>(host: &str, buf: &'b mut [u8; MAX_HOST_LEN]) -> Option<&'b str> {
    let bytes = host.as_bytes();
    let out = buf.get_mut(..bytes.len())?;
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b.to_ascii_lowercase();
    }
    // ASCII lowercasing maps ASCII bytes to ASCII bytes and leaves every other byte untouched, so
    // the result is valid UTF-8 whenever the input was.
    std::str::from_utf8(out).ok()
}

/// Whether a route host is covered by an Ingress's `spec.tls[].hosts` entries: an equal entry (both
/// lowercased), or a wildcard entry matching an exact route host. `hosts` empty in a TLS entry means
/// "every host" (the API documents it as the controller's wildcard), so it covers any route, including a
/// route without a host.
pub fn tls_covers(route_host: Option<&HostPattern>, tls_hosts: &[Vec<String>]) -> bool {
    tls_hosts.iter().any(|entry| {
        if entry.is_empty() {
            return true;
        }
        let Some(route_host) = route_host else {
            return false;
        };
        entry.iter().any(|tls| match HostPattern::parse(tls) {
            Ok(pattern) if pattern == *route_host => true,
            Ok(pattern @ HostPattern::Wildcard(_)) => match route_host {
                HostPattern::Exact(h) => pattern.matches(h),
                HostPattern::Wildcard(_) => false,
            },
            _ => false,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(h: &str) -> HostPattern {
        HostPattern::Exact(h.into())
    }

    #[test]
    fn parse_accepts_and_lowercases() {
        assert_eq!(
            HostPattern::parse("WWW.Example.COM"),
            Ok(exact("www.example.com"))
        );
        assert_eq!(
            HostPattern::parse("*.Example.com"),
            Ok(HostPattern::Wildcard("example.com".into()))
        );
        assert_eq!(HostPattern::parse("localhost"), Ok(exact("localhost")));
    }

    #[test]
    fn parse_rejects_bad_hosts() {
        for bad in [
            "", "*", "*.", "a.*.com", "foo*.com", "a..b", ".a", "a:80", "[::1]", "a b", "*.*.a",
        ] {
            assert!(
                HostPattern::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(HostPattern::parse(&"a".repeat(254)).is_err());
    }

    /// The Kubernetes docs' "Hostname wildcards" table, plus case-insensitivity.
    #[test]
    fn wildcard_matches_exactly_one_label() {
        let w = HostPattern::parse("*.foo.com").unwrap();
        let table = [
            ("bar.foo.com", true),
            ("baz.bar.foo.com", false),
            ("foo.com", false),
            (".foo.com", false),
            ("barfoo.com", false),
            ("x.foo.com.evil", false),
        ];
        for (host, want) in table {
            assert_eq!(w.matches(host), want, "*.foo.com vs {host}");
        }
        assert!(exact("foo.bar.com").matches("foo.bar.com"));
        assert!(!exact("foo.bar.com").matches("bar.com"));
    }

    #[test]
    fn strip_port_handles_names_ipv4_and_ipv6() {
        let table = [
            ("example.com", "example.com"),
            ("example.com:8080", "example.com"),
            ("example.com.", "example.com"),
            ("example.com.:80", "example.com"),
            ("127.0.0.1:80", "127.0.0.1"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
            ("[2001:db8::1]:8443", "[2001:db8::1]"),
            ("", ""),
        ];
        for (input, want) in table {
            assert_eq!(strip_port(input), want, "{input}");
        }
    }

    #[test]
    fn lowercase_into_is_bounded() {
        let mut buf = [0u8; MAX_HOST_LEN];
        assert_eq!(lowercase_into("ExAmPle.COM", &mut buf), Some("example.com"));
        assert_eq!(
            lowercase_into(&"a".repeat(MAX_HOST_LEN + 1), &mut buf),
            None
        );
        assert_eq!(lowercase_into("ÄB", &mut buf), Some("Äb"));
    }

    #[test]
    fn tls_coverage() {
        let tls = |hosts: &[&str]| vec![hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
        let www = exact("www.example.com");
        let wild = HostPattern::Wildcard("example.com".into());
        assert!(tls_covers(Some(&www), &tls(&["WWW.example.com"])));
        assert!(tls_covers(Some(&www), &tls(&["*.example.com"])));
        assert!(!tls_covers(Some(&www), &tls(&["api.example.com"])));
        assert!(!tls_covers(
            Some(&exact("a.b.example.com")),
            &tls(&["*.example.com"])
        ));
        assert!(tls_covers(Some(&wild), &tls(&["*.example.com"])));
        assert!(!tls_covers(Some(&wild), &tls(&["www.example.com"])));
        assert!(!tls_covers(None, &tls(&["www.example.com"])));
        assert!(
            tls_covers(None, &tls(&[])),
            "a TLS entry without hosts covers every host"
        );
        assert!(tls_covers(Some(&www), &tls(&[])));
        assert!(!tls_covers(Some(&www), &[]));
    }
}
