//! What a request is routed by: its host and its path, after checking the request target's form.

use http::{header, Method, Request, Version};

use crate::error::ProxyError;

/// The routing key of a request, borrowed from it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RoutingKey<'a> {
    /// The Host as received (any case, may carry `:port`); empty for an HTTP/1.0 request without Host.
    pub host: &'a str,
    /// The path without the query, undecoded.
    pub path: &'a str,
}

/// Check the request target and extract the routing key.
///
/// HTTP/1.x: the target must be origin-form (`/path?query`). absolute-form (`http://h/p`), authority-form
/// (`h:443`, CONNECT) and asterisk-form (`*`) are refused, so the route is always chosen by the Host header and
/// never by a host smuggled into the target. HTTP/1.1 requires exactly one Host header. HTTP/2 (not served
/// yet) carries scheme and authority in pseudo-headers, so its target is taken from `:authority`.
pub(crate) fn routing_key<B>(req: &Request<B>) -> Result<RoutingKey<'_>, ProxyError> {
    if req.method() == Method::CONNECT {
        return Err(ProxyError::ConnectMethod);
    }
    let uri = req.uri();
    let path = uri.path();
    if !path.starts_with('/') {
        return Err(ProxyError::TargetNotOriginForm);
    }
    if req.version() == Version::HTTP_2 {
        let host = match uri.authority() {
            Some(authority) => authority.as_str(),
            None => single_host(req)?.ok_or(ProxyError::BadHost)?,
        };
        return Ok(RoutingKey { host, path });
    }
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(ProxyError::TargetNotOriginForm);
    }
    let host = match single_host(req)? {
        Some(host) => host,
        // HTTP/1.0 predates Host: such a request only matches host-less rules.
        None if req.version() <= Version::HTTP_10 => "",
        None => return Err(ProxyError::BadHost),
    };
    Ok(RoutingKey { host, path })
}

/// The one Host header, `None` when absent; several or a non-text value are an error.
fn single_host<B>(req: &Request<B>) -> Result<Option<&str>, ProxyError> {
    let mut values = req.headers().get_all(header::HOST).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProxyError::BadHost);
    }
    first.to_str().map(Some).map_err(|_| ProxyError::BadHost)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str, version: Version, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder()
            .method(method)
            .uri(target)
            .version(version);
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn origin_form_with_host() {
        let r = req("GET", "/a/b?x=1", Version::HTTP_11, &["Foo.example:80"]);
        assert_eq!(
            routing_key(&r).unwrap(),
            RoutingKey {
                host: "Foo.example:80",
                path: "/a/b"
            }
        );
    }

    #[test]
    fn rejects_other_forms() {
        for (m, t) in [
            ("GET", "http://a/b"),
            ("OPTIONS", "*"),
            ("GET", "a.example:80"),
        ] {
            let r = req(m, t, Version::HTTP_11, &["a"]);
            assert!(
                matches!(routing_key(&r), Err(ProxyError::TargetNotOriginForm)),
                "{t}"
            );
        }
        let r = req("CONNECT", "a.example:443", Version::HTTP_11, &["a"]);
        assert!(matches!(routing_key(&r), Err(ProxyError::ConnectMethod)));
    }

    #[test]
    fn host_rules() {
        let r = req("GET", "/", Version::HTTP_11, &[]);
        assert!(matches!(routing_key(&r), Err(ProxyError::BadHost)));
        let r = req("GET", "/", Version::HTTP_11, &["a", "b"]);
        assert!(matches!(routing_key(&r), Err(ProxyError::BadHost)));
        let r = req("GET", "/p", Version::HTTP_10, &[]);
        assert_eq!(
            routing_key(&r).unwrap(),
            RoutingKey {
                host: "",
                path: "/p"
            }
        );
    }
}
