//! The upstream side: one shared HTTP/1.1 client with a keep-alive pool keyed by endpoint address.

use std::io::Write;
use std::net::SocketAddr;

use http::uri::{Authority, Parts, PathAndQuery, Scheme};
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::UpstreamBody;
use crate::config::ProxyConfig;
use crate::error::ProxyError;

/// The shared upstream client. Cloning shares the pool.
pub(crate) type UpstreamClient = Client<HttpConnector, UpstreamBody>;

/// Build the client: `TCP_NODELAY`, the connect timeout, idle pool limits; Host is never rewritten (the
/// request carries the client's Host).
pub(crate) fn client(config: &ProxyConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(config.idle_timeout)
        .pool_max_idle_per_host(config.max_idle_per_endpoint)
        .set_host(false)
        .build(connector)
}

/// The URI handed to the client: `http://<endpoint>/<path?query>`. The authority only keys the pool and
/// picks the address to connect to; the client writes the request line in origin-form (path and query).
pub(crate) fn uri(
    endpoint: SocketAddr,
    path_and_query: Option<&PathAndQuery>,
) -> Result<Uri, ProxyError> {
    // The longest rendering, "[v6]%scope:port", is 58 bytes: render on the stack, the Authority makes the one
    // copy. None of these steps can fail for a socket address and a parsed path; errors are still mapped.
    let mut buf = [0u8; 64];
    // `64` below is `buf.len()`, spelled out because `buf` is mutably borrowed there.
    let len = {
        let mut cursor = &mut buf[..];
        write!(cursor, "{endpoint}").map_err(|_| ProxyError::UpstreamUri)?;
        64 - cursor.len()
    };
    let mut parts = Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(Authority::try_from(&buf[..len]).map_err(|_| ProxyError::UpstreamUri)?);
    parts.path_and_query = Some(
        path_and_query
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).map_err(|_| ProxyError::UpstreamUri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_for_v4_and_v6() {
        let pq = PathAndQuery::from_static("/a?b=c");
        assert_eq!(
            uri("10.1.2.3:8080".parse().unwrap(), Some(&pq)).unwrap(),
            "http://10.1.2.3:8080/a?b=c"
        );
        let u = uri("[fd00::1]:80".parse().unwrap(), None).unwrap();
        assert_eq!(u, "http://[fd00::1]:80/");
    }
}
