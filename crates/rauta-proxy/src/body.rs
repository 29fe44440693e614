//! Body types: both directions stream frame by frame; nothing here buffers a whole body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::downstream::{BodyError, RequestBody};
use crate::linger::H2ClientBody;
use crate::upstream::{H2ResponseBody, ResponseBody};

/// The body of a response sent to a client: the upstream's body passed through, or a static error text.
///
/// An upstream body owns its connection and returns it to the pool itself once the response is complete
/// (see `upstream::ResponseBody`); a body dropped before its end closes the connection instead, which would
/// otherwise carry the rest of an unread response.
#[derive(Debug)]
pub(crate) struct ProxyBody(Kind);

// Every variant is a few words: the upstream exchanges are boxed where they start, so moving a response
// between layers copies pointers, not connection state.
#[derive(Debug)]
enum Kind {
    Upstream(ResponseBody),
    /// From an HTTP/2 upstream (`appProtocol: kubernetes.io/h2c`). Boxed, like the HTTP/1.1 exchange inside
    /// `Upstream`, so that every response (moved whole through several layers) stays a few words.
    Upstream2(Box<H2ResponseBody>),
    /// A complete body known up front (error texts); `None` once sent.
    Static(Option<Bytes>),
    /// A body of unknown length counted for the access log (only when the log is on).
    Counted(Box<crate::access_log::CountedBody>),
}

impl ProxyBody {
    /// A body of static bytes (no copy).
    pub(crate) fn from_static(bytes: &'static [u8]) -> Self {
        Self(Kind::Static(Some(Bytes::from_static(bytes))))
    }

    /// No body at all (ends with the head: a gRPC trailers-only answer).
    pub(crate) fn empty() -> Self {
        Self(Kind::Static(None))
    }

    /// A response body from an HTTP/2 upstream.
    pub(crate) fn upstream_h2(body: H2ResponseBody) -> Self {
        Self(Kind::Upstream2(Box::new(body)))
    }

    /// An upstream response body, streamed from its connection.
    pub(crate) fn upstream(body: ResponseBody) -> Self {
        Self(Kind::Upstream(body))
    }

    /// A body counted for the access log.
    pub(crate) fn counted(body: crate::access_log::CountedBody) -> Self {
        Self(Kind::Counted(Box::new(body)))
    }

    /// Whether the body comes from an upstream (rather than being the proxy's own answer).
    pub(crate) fn is_upstream(&self) -> bool {
        match &self.0 {
            Kind::Upstream(_) | Kind::Upstream2(_) => true,
            Kind::Static(_) => false,
            Kind::Counted(body) => body.is_upstream(),
        }
    }

    /// The response head's fields passed through as bytes by the upstream codec (then the response's
    /// header map holds nothing of the upstream's); `None` for every other body.
    pub(crate) fn passed(&self) -> Option<&crate::upstream::PassedFields> {
        match &self.0 {
            Kind::Upstream(body) => body.passed(),
            Kind::Counted(body) => body.passed(),
            Kind::Upstream2(_) | Kind::Static(_) => None,
        }
    }

    /// The upstream connection of a `101 Switching Protocols` answer, with any bytes it sent after the head;
    /// `None` for any other body.
    pub(crate) fn into_upgraded(
        self,
    ) -> Option<(crate::upstream::tls::UpstreamIo, bytes::BytesMut)> {
        match self.0 {
            Kind::Upstream(body) => body.into_upgraded(),
            // Counted bodies are never upgrades (see `access_log::finish`).
            Kind::Upstream2(_) | Kind::Static(_) | Kind::Counted(_) => None,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        // Every field is Unpin, so plain `&mut` access is sound.
        match &mut self.get_mut().0 {
            Kind::Upstream(body) => Pin::new(body).poll_frame(cx),
            Kind::Upstream2(body) => Pin::new(&mut **body).poll_frame(cx),
            Kind::Static(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Counted(body) => Pin::new(&mut **body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Upstream2(body) => body.is_end_stream(),
            Kind::Static(bytes) => bytes.is_none(),
            Kind::Counted(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Upstream(body) => body.size_hint(),
            Kind::Upstream2(body) => body.size_hint(),
            Kind::Static(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Static(None) => SizeHint::with_exact(0),
            Kind::Counted(body) => body.size_hint(),
        }
    }
}

/// Why streaming a request body upstream stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestBodyError {
    /// The client sent more than `max_body_bytes`.
    #[error("request body exceeds the configured limit")]
    TooLarge,
    /// Reading from an HTTP/2 client failed.
    #[error("reading request body from client: {0}")]
    Downstream(#[from] hyper::Error),
    /// An HTTP/1.1 client's body broke its framing (answered 400 if no response started) or ended early.
    #[error(transparent)]
    Client(#[from] BodyError),
}

/// A client's request body, whichever protocol it came in.
#[derive(Debug)]
pub(crate) enum ClientBody {
    /// No body (HTTP/1.1 request without Content-Length or Transfer-Encoding, or `Content-Length: 0`).
    Empty,
    /// Streamed from an HTTP/1.1 connection by the proxy's own codec.
    Http1(RequestBody),
    /// Streamed from an HTTP/2 connection by hyper (parked if dropped before its end: see `linger`).
    Http2(H2ClientBody),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        // Every variant is Unpin, so plain `&mut` access is sound.
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Http1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::Http2(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Http1(body) => body.is_end_stream(),
            Self::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Http1(body) => body.size_hint(),
            Self::Http2(body) => body.size_hint(),
        }
    }
}

/// The body of a request sent upstream: the client's body, cut off with [`RequestBodyError::TooLarge`]
/// once it passes the limit. The limit is checked per frame, so at most one frame beyond it is read.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    inner: ClientBody,
    /// Bytes still allowed; `u64::MAX` when unlimited.
    remaining: u64,
}

impl UpstreamBody {
    /// Wrap a client body with an optional byte limit.
    pub(crate) fn new(inner: ClientBody, limit: Option<u64>) -> Self {
        Self {
            inner,
            remaining: limit.unwrap_or(u64::MAX),
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.remaining = 0;
                        return Poll::Ready(Some(Err(RequestBodyError::TooLarge)));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response is moved whole through ~10 layers on every request (the exchange's result, the timeout,
    /// `forward`, the access log, the client codec): it must stay a few words, not carry connection state.
    #[test]
    fn a_response_stays_small_to_move() {
        let body = std::mem::size_of::<ProxyBody>();
        let response = std::mem::size_of::<http::Response<ProxyBody>>();
        println!("ProxyBody: {body} bytes, Response<ProxyBody>: {response} bytes");
        assert!(body <= 48, "ProxyBody is {body} bytes");
        assert!(response <= 160, "Response<ProxyBody> is {response} bytes");
    }
}
