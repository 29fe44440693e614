//! HTTP → HTTPS: plain-HTTP requests to a route whose host has TLS get a `308 Permanent Redirect` to the same
//! host, path and query over HTTPS (308 rather than 301 so that clients repeat the method and body).
//!
//! Only when the proxy serves HTTPS ([`crate::ProxyConfig::https_redirect_port`]) and the route's Ingress
//! did not switch it off (`rauta.io/ssl-redirect: "false"`, compiled into [`Route::ssl_redirect`]).

use http::header::{self, HeaderValue};
use http::{Response, StatusCode, Uri};
use rauta_routes::host::strip_port;
use rauta_routes::Route;

use crate::body::ProxyBody;
use crate::listener::Scheme;

/// The port a browser assumes for `https://`; left out of the Location.
const DEFAULT_HTTPS_PORT: u16 = 443;

/// The redirect for a request on `scheme` to `host` (the Host header as received) and `uri` that matched
/// `route`, or `None` when the request is to be served. `https_port` is the HTTPS listener's port.
pub(crate) fn to_https(
    scheme: Scheme,
    https_port: Option<u16>,
    route: &Route,
    host: &str,
    uri: &Uri,
) -> Option<Response<ProxyBody>> {
    let port = https_port?;
    if scheme != Scheme::Http || !route.ssl_redirect {
        return None;
    }
    let location = location(host, port, uri)?;
    let mut response = Response::new(ProxyBody::from_static(b"redirecting to https\n"));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Some(response)
}

/// `https://host[:port]/path?query`. `None` if the result is not a valid header value (it always is for a
/// Host and target that passed the request parser; a host with a trailing dot keeps it out).
fn location(host: &str, port: u16, uri: &Uri) -> Option<HeaderValue> {
    let host = strip_port(host);
    if host.is_empty() {
        return None;
    }
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let text = if port == DEFAULT_HTTPS_PORT {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    };
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_keeps_path_and_query_and_drops_the_http_port() {
        let uri: Uri = "/a/b?x=1&y=%20".parse().unwrap();
        assert_eq!(
            location("Shop.example:8080", 443, &uri).unwrap(),
            "https://Shop.example/a/b?x=1&y=%20"
        );
        assert_eq!(
            location("shop.example", 8443, &uri).unwrap(),
            "https://shop.example:8443/a/b?x=1&y=%20"
        );
        assert_eq!(
            location("[::1]:80", 443, &"/".parse().unwrap()).unwrap(),
            "https://[::1]/"
        );
        assert!(location("", 443, &uri).is_none());
    }
}
