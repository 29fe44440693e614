//! The name formats of the Kubernetes API (`k8s.io/apimachinery/pkg/util/validation`), as messages
//! (`None` when valid).

/// RFC 1123 label: at most 63 lowercase alphanumerics or '-', starting and ending alphanumeric.
/// Namespaces and Service port names use it.
pub(crate) fn dns1123_label(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some(format!(
            "must be no more than 63 characters (is {})",
            s.len()
        ));
    }
    if !is_label(s, |c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Some(format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (got {s:?})"
        ));
    }
    None
}

/// RFC 1035 label: like an RFC 1123 label but must start with a letter. Service names use it (they
/// become DNS names and environment variables).
pub(crate) fn dns1035_label(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some(format!(
            "must be no more than 63 characters (is {})",
            s.len()
        ));
    }
    if !is_label(s, |c| c.is_ascii_lowercase()) {
        return Some(format!(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with \
             an alphabetic character, and end with an alphanumeric character (got {s:?})"
        ));
    }
    None
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated RFC 1123 labels. Most object names.
pub(crate) fn dns1123_subdomain(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some(format!(
            "must be no more than 253 characters (is {})",
            s.len()
        ));
    }
    if !s
        .split('.')
        .all(|l| is_label(l, |c| c.is_ascii_lowercase() || c.is_ascii_digit()))
    {
        return Some(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
             or '.', and must start and end with an alphanumeric character (got {s:?})"
        ));
    }
    None
}

/// An Ingress host: a subdomain, optionally with a leading `*.` wildcard label, and not an IP address.
pub(crate) fn ingress_host(s: &str) -> Option<String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Some(format!("must be a DNS name, not an IP address (got {s:?})"));
    }
    let rest = s.strip_prefix("*.").unwrap_or(s);
    if rest.contains('*') {
        return Some(format!(
            "a wildcard is only allowed as the whole first label, as in \"*.example.com\" (got {s:?})"
        ));
    }
    dns1123_subdomain(rest)
}

/// IANA service name (a port name referenced by an Ingress backend): at most 15 lowercase
/// alphanumerics or '-', at least one letter, no leading, trailing or doubled '-'.
pub(crate) fn iana_port_name(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    (!ok).then(|| {
        format!(
            "a port name must be at most 15 lower case alphanumeric characters or '-', contain at \
             least one letter, and not start, end or repeat '-' (got {s:?})"
        )
    })
}

/// Whether `s` is a label: non-empty, `[a-z0-9-]`, first character passing `first`, last alphanumeric.
fn is_label(s: &str, first: impl Fn(char) -> bool) -> bool {
    let mut chars = s.chars();
    let (Some(head), Some(last)) = (chars.next(), s.chars().last()) else {
        return false;
    };
    first(head)
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "web", "web-1", "1web", "a".repeat(63).as_str()] {
            assert_eq!(dns1123_label(ok), None, "{ok}");
        }
        for bad in [
            "",
            "Web",
            "web-",
            "-web",
            "we_b",
            "a.b",
            "a".repeat(64).as_str(),
        ] {
            assert!(dns1123_label(bad).is_some(), "{bad}");
        }
        assert_eq!(dns1035_label("web-1"), None);
        assert!(dns1035_label("1web").is_some());
    }

    #[test]
    fn subdomains() {
        for ok in ["a", "web.example", "tls-cert.v2", "0.0"] {
            assert_eq!(dns1123_subdomain(ok), None, "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "A.b", "a_b", "a.-b"] {
            assert!(dns1123_subdomain(bad).is_some(), "{bad}");
        }
        assert!(dns1123_subdomain("a.".repeat(127).trim_end_matches('.')).is_none());
        assert!(dns1123_subdomain(&"ab.".repeat(85)).is_some());
    }

    #[test]
    fn hosts() {
        assert_eq!(ingress_host("foo.example.com"), None);
        assert_eq!(ingress_host("*.example.com"), None);
        assert!(ingress_host("foo.*.com").is_some());
        assert!(ingress_host("*").is_some());
        assert!(ingress_host("10.0.0.1").is_some());
        assert!(ingress_host("Foo.example.com").is_some());
    }

    #[test]
    fn port_names() {
        assert_eq!(iana_port_name("http"), None);
        assert_eq!(iana_port_name("h2c-1"), None);
        for bad in [
            "",
            "80",
            "Http",
            "-http",
            "http-",
            "ht--tp",
            "abcdefghijklmnop",
        ] {
            assert!(iana_port_name(bad).is_some(), "{bad}");
        }
    }
}
