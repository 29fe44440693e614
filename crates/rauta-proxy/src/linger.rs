//! Lingering on an HTTP/2 request body before the proxy answers a request itself.
//!
//! When the proxy answers on its own (connect refused, no route, no endpoint...) it used to answer at once,
//! often before the client had sent its request body: the request body was dropped, hyper sent the answer
//! with END_STREAM and then RST_STREAM(NO_ERROR). RFC 9113 §8.1 allows that, but clients that upload their
//! body in a later step than the headers trip over it: curl 7.88 (Debian 12) fails such a request with
//! "(92) Stream error in the HTTP/2 framing layer" instead of showing the answer, whenever its upload comes
//! after the answer (a loaded machine makes that likely). That was the cause of the flaky
//! `grpc_over_tls_with_alpn_h2` test.
//!
//! So the part of an HTTP/2 request body not yet consumed when the request is dropped is *parked* instead
//! of discarded, and before the proxy sends its own answer it reads (and discards) the rest of it, bounded
//! by [`LINGER_BYTES`] and [`LINGER_TIME`]: a client that is still sending finishes first and then reads a
//! cleanly closed stream. A client that keeps its stream open (a bidi gRPC call waiting for its answer)
//! costs at most [`LINGER_TIME`] of extra latency on an error. Answers from upstreams are never delayed.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// At most this many body bytes are read before the proxy's own answer.
pub(crate) const LINGER_BYTES: u64 = 64 * 1024;
/// At most this long is spent reading them.
pub(crate) const LINGER_TIME: Duration = Duration::from_millis(250);

/// Where a request body dropped before its end is kept for [`Parked::drain`].
type Slot = Arc<Mutex<Option<Incoming>>>;

/// The handler's end of a parked body.
pub(crate) struct Parked(Slot);

/// An HTTP/2 request body, parked on drop if it has not ended (see the module doc).
#[derive(Debug)]
pub(crate) struct H2ClientBody {
    /// `None` only during drop.
    inner: Option<Incoming>,
    /// `None` for bodies that had ended before the request was handled (nothing to linger on).
    slot: Option<Slot>,
}

/// Wrap an HTTP/2 request's body; the [`Parked`] end is there when the body has not ended yet.
pub(crate) fn park(req: Request<Incoming>) -> (Request<H2ClientBody>, Option<Parked>) {
    if req.body().is_end_stream() {
        // Most requests (GET...): no allocation.
        let req = req.map(|inner| H2ClientBody {
            inner: Some(inner),
            slot: None,
        });
        return (req, None);
    }
    let slot = Slot::default();
    let req = req.map(|inner| H2ClientBody {
        inner: Some(inner),
        slot: Some(slot.clone()),
    });
    (req, Some(Parked(slot)))
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<Incoming>> {
    // Poisoning needs a panic while holding the lock; an `Option` is consistent between statements.
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for H2ClientBody {
    fn drop(&mut self) {
        if let (Some(inner), Some(slot)) = (self.inner.take(), &self.slot) {
            if !inner.is_end_stream() {
                *lock(slot) = Some(inner);
            }
        }
    }
}

impl Body for H2ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        // Every field is Unpin.
        match &mut self.get_mut().inner {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Parked {
    /// Read and discard what is left of the request body (if it was dropped before its end), up to
    /// [`LINGER_BYTES`] and [`LINGER_TIME`]. A body still owned by someone else is left alone.
    pub(crate) async fn drain(&self) {
        let Some(mut body) = lock(&self.0).take() else {
            return;
        };
        let reading = async {
            let mut read = 0u64;
            while read <= LINGER_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        read += frame.data_ref().map_or(0, |d| d.len() as u64);
                    }
                    // The end, or the client reset the stream: nothing more to wait for.
                    None | Some(Err(_)) => return,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, reading).await;
    }
}
