//! Why a request was not proxied, and what the client is told.

use http::StatusCode;

/// A request the proxy answers itself. Each variant maps to one status code and a short static body, so
/// error responses cost no formatting.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request target is not origin-form (absolute-form, authority-form or asterisk-form).
    #[error("request target is not origin-form")]
    TargetNotOriginForm,
    /// CONNECT is not supported (the proxy is a reverse proxy, not a forward proxy).
    #[error("CONNECT is not supported")]
    ConnectMethod,
    /// HTTP/1.1 request without a Host header, or with several, or with an invalid one.
    #[error("missing or invalid Host header")]
    BadHost,
    /// No route and no default backend for the host and path.
    #[error("no route for host and path")]
    NoRoute,
    /// The backend has no ready endpoint.
    #[error("backend has no ready endpoints")]
    NoEndpoints,
    /// The declared request body (Content-Length) or the streamed one exceeds `max_body_bytes`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The endpoint could not be reached (refused, unreachable).
    #[error("upstream connect failed: {0}")]
    Connect(#[source] std::io::Error),
    /// The TCP connect to the endpoint did not complete within `connect_timeout`.
    #[error("upstream connect timed out")]
    ConnectTimeout,
    /// The endpoint did not send a response head within `response_timeout`.
    #[error("upstream response timed out")]
    ResponseTimeout,
    /// The request head is larger than `max_header_bytes` or has more than `max_headers` fields.
    #[error("request head too large")]
    HeadTooLarge,
    /// The request is not valid HTTP/1.1: a malformed head, conflicting or invalid body framing
    /// (Content-Length with Transfer-Encoding, a bad Content-Length, a bad chunk), or a body that is not
    /// chunked or delimited as declared. The text says which, for the log.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The upstream connection failed after connecting (reset, closed early, invalid or oversized
    /// response head), or the client's body failed while it was being sent.
    #[error("upstream request failed: {0}")]
    Upstream(#[source] std::io::Error),
}

impl ProxyError {
    /// The status code the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TargetNotOriginForm | Self::BadHost | Self::Malformed(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::ConnectMethod => StatusCode::METHOD_NOT_ALLOWED,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::NoEndpoints => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Connect(_) | Self::ConnectTimeout | Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::ResponseTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The short text body the client receives.
    pub fn body(&self) -> &'static [u8] {
        match self {
            Self::TargetNotOriginForm => b"400 request target must be origin-form\n",
            Self::BadHost => b"400 missing or invalid Host header\n",
            Self::Malformed(_) => b"400 bad request\n",
            Self::HeadTooLarge => b"431 request header fields too large\n",
            Self::ConnectMethod => b"405 CONNECT not allowed\n",
            Self::NoRoute => b"404 no route for host and path\n",
            Self::NoEndpoints => b"503 no ready endpoints\n",
            Self::BodyTooLarge => b"413 request body too large\n",
            Self::Connect(_) | Self::ConnectTimeout | Self::Upstream(_) => b"502 bad gateway\n",
            Self::ResponseTimeout => b"504 upstream response timeout\n",
        }
    }
}
