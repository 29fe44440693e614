//! Body types: both directions stream frame by frame; nothing here buffers a whole body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// The body of a response sent to a client: the upstream's body passed through, or a static error text.
#[derive(Debug)]
pub enum ProxyBody {
    /// Streamed from the upstream response.
    Upstream(Incoming),
    /// A complete body known up front (error texts); `None` once sent.
    Static(Option<Bytes>),
}

impl ProxyBody {
    /// A body of static bytes (no copy).
    pub fn from_static(bytes: &'static [u8]) -> Self {
        Self::Static(Some(Bytes::from_static(bytes)))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        // Both variants are Unpin, so plain `&mut` access is sound.
        match self.get_mut() {
            Self::Upstream(body) => Pin::new(body).poll_frame(cx),
            Self::Static(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream(body) => body.is_end_stream(),
            Self::Static(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream(body) => body.size_hint(),
            Self::Static(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Static(None) => SizeHint::with_exact(0),
        }
    }
}

/// Why streaming a request body upstream stopped.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    /// The client sent more than `max_body_bytes`.
    #[error("request body exceeds the configured limit")]
    TooLarge,
    /// Reading from the client failed.
    #[error("reading request body from client: {0}")]
    Downstream(#[from] hyper::Error),
}

/// The body of a request sent upstream: the client's body, cut off with [`RequestBodyError::TooLarge`]
/// once it passes the limit. The limit is checked per frame, so at most one frame beyond it is read.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    /// Bytes still allowed; `u64::MAX` when unlimited.
    remaining: u64,
}

impl UpstreamBody {
    /// Wrap a client body with an optional byte limit.
    pub fn new(inner: Incoming, limit: Option<u64>) -> Self {
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
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
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
