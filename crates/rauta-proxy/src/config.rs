//! Proxy settings that do not come from the route table.

use std::time::Duration;

/// Limits and timeouts of the userspace proxy.
///
/// Build it with struct-update syntax over [`ProxyConfig::default`] so that new fields do not break callers:
/// `ProxyConfig { response_timeout: Duration::from_secs(5), ..ProxyConfig::default() }`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Time allowed for the TCP connect to an endpoint. Exceeding it answers 502 (the upstream is
    /// unreachable, as with a refused connect), not 504.
    pub connect_timeout: Duration,
    /// Time from dispatching the request upstream until the response head arrives. It includes the upload of
    /// the request body when the backend reads the whole body before answering. Exceeding it answers 504.
    pub response_timeout: Duration,
    /// Largest request head (request line plus headers) accepted from a client; larger heads get 431. Also
    /// bounds a chunked request body's trailer section. Upstream response heads may be as large as this or
    /// 8 KiB, whichever is more.
    pub max_header_bytes: usize,
    /// Most request headers accepted from a client; more get 431.
    pub max_headers: usize,
    /// Largest request body accepted; larger bodies get 413. `None` means unlimited.
    pub max_body_bytes: Option<u64>,
    /// How long an idle upstream connection stays in the pool.
    pub idle_timeout: Duration,
    /// Most idle upstream connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
    /// Time a client has to send a complete request head (slowloris protection), counted from when the
    /// connection starts waiting for it (so it is also how long an idle keep-alive connection stays open);
    /// the connection is closed when it runs out. It is enforced by one timer per connection, checked a few
    /// times per period rather than re-armed per request, so a connection closes between 1 and 1.25 times
    /// this after the wait began.
    pub header_read_timeout: Duration,
    /// Port of the HTTPS listener: plain-HTTP requests to TLS routes are redirected there (308) unless their
    /// Ingress says `rauta.io/ssl-redirect: "false"`. `None` (HTTPS not served): no redirect.
    pub https_redirect_port: Option<u16>,
    /// The access log (one line per request on stdout).
    pub access_log: crate::access_log::AccessLogFormat,
    /// Health-aware endpoint choice (active checks, outlier ejection, one retry after a connect failure).
    /// `None`: every request picks from the backend's own table over all its endpoints, without retries.
    pub health: Option<rauta_health::Health>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_body_bytes: None,
            idle_timeout: Duration::from_secs(90),
            max_idle_per_endpoint: 256,
            header_read_timeout: Duration::from_secs(30),
            https_redirect_port: None,
            access_log: crate::access_log::AccessLogFormat::Off,
            health: None,
        }
    }
}

/// Smallest limit on an upstream response head, whatever `max_header_bytes` says: a limit meant for client
/// request heads must not make ordinary responses (cookies, CSP headers) fail with 502.
const MIN_RESPONSE_HEAD: usize = 8192;

impl ProxyConfig {
    /// Largest upstream response head accepted.
    pub(crate) fn max_response_head(&self) -> usize {
        self.max_header_bytes.max(MIN_RESPONSE_HEAD)
    }
}
