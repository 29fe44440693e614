//! Bodies of an HTTP/2 upstream exchange: the request body hyper's client sends, and the response body
//! streamed back to the client.
//!
//! hyper's HTTP/2 client polls request bodies on its own connection task. A body from an HTTP/2 client
//! (hyper's `Incoming`) can be polled anywhere, so it is handed over as it is ([`H2RequestBody::Direct`]).
//! A body decoded by the proxy's own HTTP/1.1 codec can not: it must only be polled from inside its client
//! connection's driver (see `downstream::body`). Such a body is *pumped* by the request's own task into a
//! one-frame slot that hyper reads ([`H2RequestBody::Bridged`]): by `forward` while it waits for the
//! response head, and by [`H2ResponseBody`] whenever the client connection polls the response. The slot
//! holds one frame, so a slow upstream slows the client down (back-pressure) and nothing is buffered.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::body::{RequestBodyError, UpstreamBody};
use crate::downstream::BodyError;
use crate::grpc;

/// The request body given to hyper's HTTP/2 client.
#[derive(Debug)]
pub(crate) enum H2RequestBody {
    /// A body hyper can poll on any task.
    Direct(UpstreamBody),
    /// The receiving end of a [`Pump`].
    Bridged(Bridged),
}

impl Body for H2RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        // Both variants are Unpin.
        match self.get_mut() {
            Self::Direct(body) => Pin::new(body).poll_frame(cx),
            Self::Bridged(bridged) => bridged.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Direct(body) => body.is_end_stream(),
            Self::Bridged(bridged) => lock(&bridged.slot).finished(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Direct(body) => body.size_hint(),
            Self::Bridged(bridged) => bridged.hint,
        }
    }
}

/// What the pump and hyper's reader share.
#[derive(Debug, Default)]
struct Slot {
    /// A frame (or the client body's error) waiting for the reader.
    frame: Option<Result<Frame<Bytes>, RequestBodyError>>,
    /// The client body ended: after `frame`, the reader sees the end.
    ended: bool,
    /// The pump went away before the body ended (the exchange was abandoned): the reader sees an error, so
    /// the upstream stream is reset rather than ended as if complete.
    aborted: bool,
    /// hyper dropped the reader: the pump stops.
    reader_gone: bool,
    reader: Option<Waker>,
    pump: Option<Waker>,
}

impl Slot {
    fn finished(&self) -> bool {
        self.frame.is_none() && self.ended
    }
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // Poisoning needs a panic while holding the lock; the slot is consistent between statements anyway.
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// Moves an HTTP/1.1 client's body into the slot, polled on the client connection's task.
#[derive(Debug)]
pub(crate) struct Pump {
    body: Option<UpstreamBody>,
    slot: Arc<Mutex<Slot>>,
}

/// hyper's end of a [`Pump`].
#[derive(Debug)]
pub(crate) struct Bridged {
    slot: Arc<Mutex<Slot>>,
    hint: SizeHint,
}

/// A pump over `body` and the body hyper reads from it.
pub(crate) fn bridge(body: UpstreamBody) -> (Pump, Bridged) {
    let slot = Arc::new(Mutex::new(Slot::default()));
    let hint = body.size_hint();
    let bridged = Bridged {
        slot: slot.clone(),
        hint,
    };
    (
        Pump {
            body: Some(body),
            slot,
        },
        bridged,
    )
}

impl Pump {
    /// Move frames into the slot while it has room. `Ready` once the whole body is handed over (or the
    /// reader is gone); the pump is then done and may be dropped.
    pub(crate) fn poll_pump(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(());
            };
            {
                let mut slot = lock(&self.slot);
                if slot.reader_gone {
                    self.body = None;
                    return Poll::Ready(());
                }
                if slot.frame.is_some() {
                    slot.pump = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
            // A pending client body is woken by its connection driver reading the socket (see module doc).
            let next = match Pin::new(body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            };
            let mut slot = lock(&self.slot);
            match next {
                Some(Ok(frame)) => slot.frame = Some(Ok(frame)),
                Some(Err(err)) => {
                    slot.frame = Some(Err(err));
                    slot.ended = true;
                    self.body = None;
                }
                None => {
                    slot.ended = true;
                    self.body = None;
                }
            }
            if let Some(reader) = slot.reader.take() {
                reader.wake();
            }
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        if self.body.is_some() {
            let mut slot = lock(&self.slot);
            slot.aborted = true;
            if let Some(reader) = slot.reader.take() {
                reader.wake();
            }
        }
    }
}

impl Bridged {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let mut slot = lock(&self.slot);
        if let Some(frame) = slot.frame.take() {
            if let Some(pump) = slot.pump.take() {
                pump.wake();
            }
            return Poll::Ready(Some(frame));
        }
        if slot.ended {
            return Poll::Ready(None);
        }
        if slot.aborted {
            slot.ended = true;
            return Poll::Ready(Some(Err(RequestBodyError::Client(BodyError::Closed))));
        }
        slot.reader = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Bridged {
    fn drop(&mut self) {
        let mut slot = lock(&self.slot);
        slot.reader_gone = true;
        if let Some(pump) = slot.pump.take() {
            pump.wake();
        }
    }
}

/// A response body from an HTTP/2 upstream.
///
/// It also pumps what is left of an HTTP/1.1 client's request body (full-duplex streaming), and for a gRPC
/// call with a deadline it enforces that deadline on the whole response: if the body has not ended when the
/// deadline passes, it ends with trailers saying DEADLINE_EXCEEDED (and the upstream stream is reset when
/// the body is dropped).
pub(crate) struct H2ResponseBody {
    incoming: Incoming,
    pump: Option<Pump>,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Ended by the deadline: nothing more is read from `incoming`.
    cut: bool,
}

impl std::fmt::Debug for H2ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2ResponseBody")
            .field("pumping", &self.pump.is_some())
            .field("deadline", &self.deadline.is_some())
            .finish_non_exhaustive()
    }
}

impl H2ResponseBody {
    /// The body of `incoming`; `pump` still feeding the request body, if any; `deadline` for gRPC calls.
    pub(crate) fn new(
        incoming: Incoming,
        pump: Option<Pump>,
        deadline: Option<tokio::time::Instant>,
    ) -> Self {
        Self {
            incoming,
            pump,
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            cut: false,
        }
    }
}

impl Body for H2ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        // Every field is Unpin.
        let this = self.get_mut();
        if this.cut {
            return Poll::Ready(None);
        }
        if let Some(pump) = this.pump.as_mut() {
            if pump.poll_pump(cx).is_ready() {
                this.pump = None;
            }
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                this.cut = true;
                this.pump = None;
                let trailers =
                    grpc::status_fields(grpc::Code::DeadlineExceeded, "deadline exceeded");
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
        }
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(io::Error::other(err)))),
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(None) => {
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        // While the request body is still pumped, the response must keep being polled.
        self.cut || (self.pump.is_none() && self.incoming.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
