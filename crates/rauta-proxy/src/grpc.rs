//! gRPC through the proxy: which requests are gRPC, their deadline (`grpc-timeout`), and the proxy's own
//! answers as gRPC statuses instead of text pages.
//!
//! A gRPC client reads the outcome of a call from the `grpc-status` field, not from the HTTP status: a
//! `502` text page would surface as a confusing INTERNAL/UNKNOWN error. So when the proxy itself ends a gRPC
//! call it answers HTTP 200 with a *trailers-only* response (one HEADERS frame with END_STREAM carrying
//! `content-type`, `grpc-status` and `grpc-message`), as gRPC servers do for calls that fail before any
//! message.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ProxyBody;
use crate::error::ProxyError;

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The gRPC status codes the proxy answers with (numbers from the gRPC spec, `doc/statuscodes.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// 4: the call's deadline (`grpc-timeout`, else `response_timeout`) passed.
    DeadlineExceeded,
    /// 8: the request body is over `max_body_bytes`.
    ResourceExhausted,
    /// 12: no route for the call's host and path (the method is served nowhere).
    Unimplemented,
    /// 13: the request is malformed.
    Internal,
    /// 14: no endpoint, connect failure, or the upstream connection failed: retrying may help.
    Unavailable,
}

impl Code {
    /// The decimal value as the `grpc-status` field carries it.
    fn value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::DeadlineExceeded => "4",
            Self::ResourceExhausted => "8",
            Self::Unimplemented => "12",
            Self::Internal => "13",
            Self::Unavailable => "14",
        })
    }
}

/// Whether a request is a gRPC call: its content type is `application/grpc` or `application/grpc+<codec>`
/// (or with parameters), case-insensitively.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    const PREFIX: &[u8] = b"application/grpc";
    headers.get(header::CONTENT_TYPE).is_some_and(|value| {
        let bytes = value.as_bytes();
        bytes.len() >= PREFIX.len()
            && bytes[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
            && matches!(bytes.get(PREFIX.len()), None | Some(b'+' | b';'))
    })
}

/// The call's deadline from its `grpc-timeout` field; `None` when absent or invalid (an invalid value is
/// ignored, as gRPC servers do, and the proxy's own timeout applies).
pub(crate) fn timeout(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(&GRPC_TIMEOUT)
        .and_then(|value| parse_timeout(value.as_bytes()))
}

/// Parse a `grpc-timeout` value: 1 to 8 ASCII digits and a unit (`H`ours, `M`inutes, `S`econds,
/// `m`illiseconds, `u` microseconds, `n`anoseconds).
pub(crate) fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 8 digits: no overflow, even in hours (99,999,999 * 3600 < 2^64).
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The gRPC status (and a short message) for a request the proxy answers itself.
pub(crate) fn status_of(err: &ProxyError) -> (Code, &'static str) {
    match err {
        ProxyError::NoRoute => (Code::Unimplemented, "no route for host and path"),
        ProxyError::ConnectMethod => (Code::Unimplemented, "CONNECT not allowed"),
        ProxyError::NoEndpoints => (Code::Unavailable, "no ready endpoints"),
        ProxyError::Connect(_) | ProxyError::ConnectTimeout => {
            (Code::Unavailable, "upstream connect failed")
        }
        ProxyError::Upstream(_) => (Code::Unavailable, "upstream request failed"),
        ProxyError::ResponseTimeout => (Code::DeadlineExceeded, "deadline exceeded"),
        ProxyError::BodyTooLarge => (Code::ResourceExhausted, "request body too large"),
        ProxyError::HeadTooLarge => (Code::ResourceExhausted, "request headers too large"),
        ProxyError::TargetNotOriginForm | ProxyError::BadHost | ProxyError::Malformed(_) => {
            (Code::Internal, "malformed request")
        }
    }
}

/// The proxy's answer to a gRPC request it could not forward: a trailers-only response.
pub(crate) fn error_response(err: &ProxyError) -> Response<ProxyBody> {
    let (code, message) = status_of(err);
    let mut response = Response::new(ProxyBody::empty());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.extend(status_fields(code, message));
    response
}

/// `grpc-status` and `grpc-message` fields, for a trailers-only head or for trailers ending a body.
/// `message` must be printable ASCII without `%` (it is sent as is; gRPC percent-encodes the rest).
pub(crate) fn status_fields(code: Code, message: &'static str) -> HeaderMap {
    let mut fields = HeaderMap::with_capacity(2);
    fields.insert(GRPC_STATUS.clone(), code.value());
    fields.insert(GRPC_MESSAGE.clone(), HeaderValue::from_static(message));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_type(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn grpc_content_types() {
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC+json",
            "application/grpc;charset=utf-8",
        ] {
            assert!(is_grpc(&with_type(yes)), "{yes}");
        }
        for no in ["application/grpcx", "application/json", "text/plain", ""] {
            assert!(!is_grpc(&with_type(no)), "{no}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_timeout(b"99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout(b"7n"), Some(Duration::from_nanos(7)));
        assert_eq!(
            parse_timeout(b"99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        for bad in [&b""[..], b"S", b"123", b"123456789S", b"1x", b"-1S", b"1 S"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn proxy_failures_become_grpc_statuses() {
        let response = error_response(&ProxyError::NoEndpoints);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "14");
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert!(http_body::Body::is_end_stream(response.body()));
        assert_eq!(status_of(&ProxyError::NoRoute).0, Code::Unimplemented);
        assert_eq!(
            status_of(&ProxyError::ResponseTimeout).0,
            Code::DeadlineExceeded
        );
        assert_eq!(status_of(&ProxyError::ConnectTimeout).0, Code::Unavailable);
    }
}
