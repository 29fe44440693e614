//! The client side of HTTP/1.x: RAUTA's own server codec, driven on the connection's own task.
//!
//! hyper's server ran each connection through its dispatcher, armed a timer per request head
//! (`header_read_timeout`) and moved requests and responses through several layers; here one loop reads a
//! head into a reusable buffer, forwards it on the same task, and writes the response head together with
//! whatever body bytes are ready in one write.
//!
//! Invariants:
//! - One request at a time. Pipelined requests wait in the read buffer and are answered in order, each after
//!   the previous response was written completely.
//! - While a request body streams, the connection's read buffer belongs to the body's shared state
//!   ([`body::BodyState`]) and the driver does the socket reads the body asks for (see `body`); the buffer
//!   comes back when the exchange ends, with any pipelined bytes after the body.
//! - The connection is reused only if the request body was read to its end without error and nobody asked to
//!   close; otherwise it is closed after the response (lingering briefly so that unread request bytes do
//!   not turn the close into a reset that could destroy the response).
//! - Graceful shutdown: an idle connection (waiting for a head with nothing buffered) closes at once; a
//!   request in flight completes and its response says `Connection: close`.

mod body;
mod deadline;
mod head;
mod response;
mod rewind;
mod upgrade;

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Sleep;

use crate::body::{ClientBody, ProxyBody};
use crate::error::ProxyError;
use crate::forward;
use crate::server::ConnContext;

pub(crate) use body::{BodyError, RequestBody};
pub(crate) use head::UpgradeRequest;
pub(crate) use rewind::Rewind;

use body::{lock, BodyState, SharedBody};
use deadline::HeadDeadline;
use head::{parse_head, BodyFraming, FieldSpans, Head, Preface};
use response::{encode_head, push_hex, Framing, RequestInfo};

/// Read buffer capacity of a new connection; most request heads are far smaller.
const INITIAL_READ_BUF: usize = 8 * 1024;
/// Free space made before each read when less than a quarter of it is left.
const READ_RESERVE: usize = 16 * 1024;
/// Write buffer capacity of a new connection (a typical response head and small body).
const INITIAL_WRITE_BUF: usize = 4 * 1024;
/// Body frames below this size are copied next to the head or their chunk framing (one write); larger ones
/// are written from their own buffer.
const COPY_BELOW: usize = 16 * 1024;
/// Buffered response bytes are written once they reach this much, even if more body is ready.
const FLUSH_AT: usize = 64 * 1024;
/// After deciding to close with request bytes possibly unread: how long and how much to keep reading (and
/// discarding) so that the close is a FIN, not a reset that could destroy the response in flight.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;
/// The interim response to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How a connection left the HTTP/1 codec.
pub(crate) enum Outcome<I> {
    /// It is done (closed, or to be dropped).
    Closed,
    /// It opened with the HTTP/2 preface: serve it with HTTP/2, preface included.
    Http2(Rewind<I>),
}

/// Graceful shutdown as seen by one connection: a flag for the request path (a relaxed load per response)
/// and a future that completes when shutdown begins, polled only while the connection is idle.
pub(crate) struct Shutdown<'a, F> {
    pub(crate) started: &'a AtomicBool,
    pub(crate) signal: Pin<&'a mut F>,
}

/// Serve HTTP/1.x on `io` until the client closes, the connection fails or times out, or shutdown closes
/// it. With `allow_h2`, a connection opening with the HTTP/2 preface is handed back as
/// [`Outcome::Http2`] instead.
pub(crate) async fn serve<I, F>(
    ctx: &ConnContext,
    io: I,
    shutdown: Shutdown<'_, F>,
    allow_h2: bool,
) -> Outcome<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send,
    F: Future<Output = ()> + Send,
{
    let config = &ctx.proxy.config;
    let mut conn = Conn {
        ctx,
        io,
        rbuf: BytesMut::with_capacity(INITIAL_READ_BUF),
        wbuf: Vec::with_capacity(INITIAL_WRITE_BUF),
        spans: Vec::new(),
        spare_headers: HeaderMap::new(),
        body: None,
        interim: &[],
        deadline: HeadDeadline::new(config.header_read_timeout),
        response_timer: None,
        shutdown,
        shutdown_seen: false,
        signal_armed: None,
    };
    let mut first = true;
    loop {
        let head = match conn.read_head(first && allow_h2).await {
            HeadRead::Head(head) => head,
            HeadRead::Http2 => return Outcome::Http2(Rewind::new(conn.rbuf.freeze(), conn.io)),
            HeadRead::Closed => return Outcome::Closed,
            HeadRead::Invalid(err) => {
                conn.answer_invalid(&err).await;
                return Outcome::Closed;
            }
        };
        first = false;
        match conn.exchange(head).await {
            Next::KeepAlive => conn.deadline.next_wait(),
            Next::Close { linger } => {
                if linger {
                    conn.linger().await;
                } else {
                    conn.close().await;
                }
                return Outcome::Closed;
            }
        }
    }
}

// Returned once per request and matched at once: boxing the head would add an allocation per request.
#[allow(clippy::large_enum_variant)]
enum HeadRead {
    Head(Head),
    Http2,
    /// EOF, read error, head timeout or shutdown while idle: close without answering.
    Closed,
    /// A head that is not acceptable: answer it (400/431) and close.
    Invalid(ProxyError),
}

enum Next {
    KeepAlive,
    /// Close; `linger`: request bytes may be left unread.
    Close {
        linger: bool,
    },
}

/// Why waiting for head bytes stopped without bytes.
enum WaitEnd {
    Eof,
    Timeout,
    Shutdown,
    Failed,
}

struct Conn<'a, I, F> {
    ctx: &'a ConnContext,
    io: I,
    /// Bytes read and not yet consumed (lent to `body` while a request body streams).
    rbuf: BytesMut,
    /// Response bytes not yet written.
    wbuf: Vec<u8>,
    spans: FieldSpans,
    /// The last response's header map, emptied: the next request head's map reuses its allocation (two
    /// allocations and frees less per request).
    spare_headers: HeaderMap,
    /// Created on the first request with a body, reused for every later one.
    body: Option<SharedBody>,
    /// The rest of a `100 Continue` being written.
    interim: &'static [u8],
    deadline: HeadDeadline,
    /// The response deadline of every request on this connection, re-armed per request (see
    /// `forward::handle`); created with the first request.
    response_timer: Option<Pin<Box<Sleep>>>,
    shutdown: Shutdown<'a, F>,
    /// The shutdown future completed (it must not be polled again).
    shutdown_seen: bool,
    /// The waker the shutdown future was last polled with (see `poll_head_bytes`).
    signal_armed: Option<Waker>,
}

impl<I, F> Conn<'_, I, F>
where
    I: AsyncRead + AsyncWrite + Unpin + Send,
    F: Future<Output = ()> + Send,
{
    fn draining(&self) -> bool {
        self.shutdown_seen || self.shutdown.started.load(Ordering::Relaxed)
    }

    /// Read until a complete head is buffered (pipelined requests may already be).
    async fn read_head(&mut self, detect_h2: bool) -> HeadRead {
        let config = &self.ctx.proxy.config;
        loop {
            if !self.rbuf.is_empty() {
                let preface = if detect_h2 {
                    head::preface(&self.rbuf)
                } else {
                    Preface::Http1
                };
                match preface {
                    Preface::Http2 => return HeadRead::Http2,
                    Preface::Undecided => {}
                    Preface::Http1 => match parse_head(
                        &mut self.rbuf,
                        config.max_header_bytes,
                        config.max_headers,
                        &mut self.spans,
                        &mut self.spare_headers,
                    ) {
                        Ok(Some(head)) => return HeadRead::Head(head),
                        Ok(None) => {}
                        Err(err) => return HeadRead::Invalid(err),
                    },
                }
            }
            let idle = self.rbuf.is_empty();
            if idle && self.draining() {
                return HeadRead::Closed;
            }
            match poll_fn(|cx| self.poll_head_bytes(cx, idle)).await {
                Ok(()) => {}
                Err(WaitEnd::Eof | WaitEnd::Timeout | WaitEnd::Shutdown | WaitEnd::Failed) => {
                    return HeadRead::Closed
                }
            }
        }
    }

    /// Read some bytes of a head, unless the head deadline passes or (when idle) shutdown begins.
    ///
    /// The shutdown signal and the deadline are looked at only once the read would block, and are polled
    /// only when that can change something (first wait of this task, or the timer fired): this runs for
    /// every request, and each poll costs a lock or an atomic waker update. Nothing is missed: a wait ends
    /// either with bytes, taken at once, or with a read that would block, after which both are checked; a
    /// client trickling bytes reaches that point after each of them.
    fn poll_head_bytes(&mut self, cx: &mut Context<'_>, idle: bool) -> Poll<Result<(), WaitEnd>> {
        reserve(&mut self.rbuf);
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(WaitEnd::Eof)),
            Poll::Ready(Ok(_)) => return Poll::Ready(Ok(())),
            Poll::Ready(Err(_)) => return Poll::Ready(Err(WaitEnd::Failed)),
            Poll::Pending => {}
        }
        if idle && !self.shutdown_seen {
            // The flag is set before the signal wakes anyone (also when the signal's sender is dropped), so
            // once the signal future is registered with this task's waker, the flag alone tells.
            if self.draining() {
                self.shutdown_seen = true;
                return Poll::Ready(Err(WaitEnd::Shutdown));
            }
            let same_task = self
                .signal_armed
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()));
            if !same_task {
                if self.shutdown.signal.as_mut().poll(cx).is_ready() {
                    self.shutdown_seen = true;
                    return Poll::Ready(Err(WaitEnd::Shutdown));
                }
                self.signal_armed = Some(cx.waker().clone());
            }
        }
        if self.deadline.poll_expired(cx) {
            return Poll::Ready(Err(WaitEnd::Timeout));
        }
        Poll::Pending
    }

    /// Forward one request and write its response.
    async fn exchange(&mut self, head: Head) -> Next {
        let Head {
            parts,
            framing,
            keep_alive,
            expect_continue,
            accepts_trailers,
            upgrade,
        } = head;
        let req = RequestInfo {
            is_head: parts.method == Method::HEAD,
            version: parts.version,
        };
        let config = &self.ctx.proxy.config;
        let shared = if framing == BodyFraming::None {
            None
        } else {
            let shared = self
                .body
                .get_or_insert_with(|| {
                    Arc::new(Mutex::new(BodyState::new(
                        config.max_header_bytes,
                        config.max_headers,
                    )))
                })
                .clone();
            lock(&shared).start(std::mem::take(&mut self.rbuf), framing, expect_continue);
            Some(shared)
        };
        let body = match &shared {
            None => ClientBody::Empty,
            Some(shared) => ClientBody::Http1(RequestBody::new(shared.clone())),
        };

        let ctx = self.ctx;
        // Taken out for the exchange (`pump_body` below borrows the whole connection); put back after.
        let mut timer = self.response_timer.take().unwrap_or_else(|| {
            Box::pin(tokio::time::sleep_until(
                tokio::time::Instant::now() + config.response_timeout,
            ))
        });
        let response = {
            let request = Request::from_parts(parts, body);
            let mut forwarding = pin!(forward::handle(ctx, request, timer.as_mut()));
            poll_fn(|cx| loop {
                if let Poll::Ready(response) = forwarding.as_mut().poll(cx) {
                    return Poll::Ready(response);
                }
                if !self.pump_body(cx, true) {
                    return Poll::Pending;
                }
            })
            .await
        };
        self.response_timer = Some(timer);

        let (parts, mut body) = response.into_parts();
        if parts.status == StatusCode::SWITCHING_PROTOCOLS && upgrade {
            return self.switch(&parts, body, req).await;
        }
        let unread =
            |shared: &Option<SharedBody>| shared.as_ref().is_some_and(|s| !lock(s).complete());
        // A request body nobody will read any more (the proxy answered itself) means closing: say so.
        let mut close = !keep_alive || self.draining() || (unread(&shared) && !body.is_upstream());
        let mut out = std::mem::take(&mut self.wbuf);
        out.clear();
        out.extend_from_slice(self.interim);
        self.interim = &[];
        let framing = encode_head(
            &mut out,
            &parts,
            body.passed(),
            &body.size_hint(),
            req,
            &mut close,
        );
        self.wbuf = out;
        // Emptied now: its values may share the upstream's read buffer, which the body is about to reuse.
        self.spare_headers = parts.headers;
        self.spare_headers.clear();
        let written = self.write_body(&mut body, framing, accepts_trailers).await;
        // Dropping the response body ends the exchange upstream (pooling or closing that connection) and
        // drops the request body with it.
        drop(body);
        if written.is_err() {
            return Next::Close { linger: false };
        }
        let mut complete = true;
        if let Some(shared) = &shared {
            let mut state = lock(shared);
            // A Content-Length body the upstream did not read may already be buffered whole.
            complete = state.discard_buffered();
            self.rbuf = std::mem::take(&mut state.buf);
        }
        if close || !complete {
            return Next::Close { linger: !complete };
        }
        Next::KeepAlive
    }

    /// Do what a streaming request body needs from the socket: write a due `100 Continue` (only before the
    /// response head, `may_continue`) and read when the body wants bytes. Returns whether anything arrived
    /// that the body should see (the caller polls again).
    fn pump_body(&mut self, cx: &mut Context<'_>, may_continue: bool) -> bool {
        let Some(shared) = &self.body else {
            return false;
        };
        let mut state = lock(shared);
        if std::mem::take(&mut state.continue_due) && may_continue {
            self.interim = CONTINUE;
        }
        while !self.interim.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, self.interim) {
                Poll::Ready(Ok(n)) if n > 0 => self.interim = &self.interim[n..],
                // The client is gone; the body read below finds out too.
                Poll::Ready(_) => self.interim = &[],
                Poll::Pending => break,
            }
        }
        if !state.want_read || state.eof {
            return false;
        }
        reserve(&mut state.buf);
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut state.buf) {
            Poll::Ready(Ok(n)) => {
                state.eof = n == 0;
                state.want_read = false;
                true
            }
            Poll::Ready(Err(_)) => {
                state.eof = true;
                state.want_read = false;
                true
            }
            Poll::Pending => false,
        }
    }

    /// Write the response body after the head in `wbuf`, batching what is ready into as few writes as possible.
    async fn write_body(
        &mut self,
        body: &mut ProxyBody,
        framing: Framing,
        accepts_trailers: bool,
    ) -> io::Result<()> {
        if framing == Framing::None {
            return self.flush().await;
        }
        let chunked = framing == Framing::Chunked;
        let mut remaining = match framing {
            Framing::Length(n) => n,
            _ => u64::MAX,
        };
        loop {
            let step = poll_fn(|cx| loop {
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Ready(frame) => return Poll::Ready(Some(frame)),
                    Poll::Pending => {
                        if self.pump_body(cx, false) {
                            continue;
                        }
                        // Nothing more right now: write what is buffered before waiting.
                        if !self.wbuf.is_empty() {
                            return Poll::Ready(None);
                        }
                        return Poll::Pending;
                    }
                }
            })
            .await;
            let frame = match step {
                None => {
                    self.flush().await?;
                    continue;
                }
                Some(None) => {
                    if chunked {
                        self.wbuf.extend_from_slice(b"0\r\n\r\n");
                    } else if remaining != 0 && framing != Framing::Close {
                        // Shorter than its declared length: only closing tells the client.
                        self.flush().await?;
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short body"));
                    }
                    return self.flush().await;
                }
                Some(Some(Err(err))) => {
                    // The upstream failed mid-body: send what arrived, then close (for chunked framing, the
                    // missing last chunk tells the client the body is incomplete).
                    self.flush().await?;
                    return Err(err);
                }
                Some(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) => {
                    let len = data.len() as u64;
                    if len > remaining {
                        return Err(io::Error::other("body longer than its length"));
                    }
                    if framing != Framing::Close && !chunked {
                        remaining -= len;
                    }
                    if chunked {
                        push_hex(&mut self.wbuf, len);
                        self.wbuf.extend_from_slice(b"\r\n");
                    }
                    if data.len() < COPY_BELOW {
                        self.wbuf.extend_from_slice(&data);
                    } else {
                        self.flush().await?;
                        self.io.write_all(&data).await?;
                    }
                    if chunked {
                        self.wbuf.extend_from_slice(b"\r\n");
                    }
                    if self.wbuf.len() >= FLUSH_AT {
                        self.flush().await?;
                    }
                }
                Err(frame) => {
                    // Trailers end the body; only chunked framing has a place for them, and only clients
                    // that said `TE: trailers` get them.
                    if let (true, Ok(trailers)) = (chunked, frame.into_trailers()) {
                        self.wbuf.extend_from_slice(b"0\r\n");
                        if accepts_trailers {
                            for (name, value) in &trailers {
                                self.wbuf.extend_from_slice(name.as_str().as_bytes());
                                self.wbuf.extend_from_slice(b": ");
                                self.wbuf.extend_from_slice(value.as_bytes());
                                self.wbuf.extend_from_slice(b"\r\n");
                            }
                        }
                        self.wbuf.extend_from_slice(b"\r\n");
                        return self.flush().await;
                    }
                }
            }
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            let result = self.io.write_all(&self.wbuf).await;
            self.wbuf.clear();
            result?;
        }
        Ok(())
    }

    /// Answer a `101 Switching Protocols` and tunnel bytes until either side closes.
    async fn switch(
        &mut self,
        parts: &http::response::Parts,
        body: ProxyBody,
        req: RequestInfo,
    ) -> Next {
        let Some((upstream, upstream_bytes)) = body.into_upgraded() else {
            return Next::Close { linger: false };
        };
        let mut out = std::mem::take(&mut self.wbuf);
        out.clear();
        let mut close = false;
        encode_head(
            &mut out,
            parts,
            None,
            &http_body::SizeHint::with_exact(0),
            req,
            &mut close,
        );
        self.wbuf = out;
        if self.flush().await.is_err() {
            return Next::Close { linger: false };
        }
        let client_bytes = std::mem::take(&mut self.rbuf);
        if let Err(err) =
            upgrade::tunnel(&mut self.io, &client_bytes, upstream, upstream_bytes).await
        {
            tracing::debug!(client = %self.ctx.peer, error = %err, "upgraded connection ended with error");
        }
        Next::Close { linger: false }
    }

    /// Answer a head that cannot be served (400, 431), then close.
    async fn answer_invalid(&mut self, err: &ProxyError) {
        tracing::debug!(client = %self.ctx.peer, error = %err, "invalid request head");
        let response = forward::error_response(err);
        self.ctx
            .proxy
            .metrics
            .no_service()
            .record(response.status());
        let (parts, body) = response.into_parts();
        let mut out = std::mem::take(&mut self.wbuf);
        out.clear();
        let mut close = true;
        let req = RequestInfo {
            is_head: false,
            version: http::Version::HTTP_11,
        };
        let framing = encode_head(&mut out, &parts, None, &body.size_hint(), req, &mut close);
        self.wbuf = out;
        let mut body = body;
        if self.write_body(&mut body, framing, false).await.is_ok() {
            self.linger().await;
        }
    }

    /// Close after a response with nothing left unread: shut the write side, which over TLS sends
    /// `close_notify` first (a bare FIN reads as a possible truncation to the client, and OpenSSL 3 and rustls
    /// clients report it as an unexpected EOF). Bounded: a client that stops reading cannot hold the task.
    async fn close(&mut self) {
        let _ = tokio::time::timeout(LINGER_TIME, self.io.shutdown()).await;
    }

    /// Close gracefully when request bytes may be unread: send FIN, then read and discard for a little while
    /// so the client sees the response rather than a reset.
    async fn linger(&mut self) {
        if self.io.shutdown().await.is_err() {
            return;
        }
        let mut scratch = [0u8; 4096];
        let mut discarded = 0;
        let _ = tokio::time::timeout(LINGER_TIME, async {
            while discarded < LINGER_BYTES {
                match self.io.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
            }
        })
        .await;
    }
}

/// Make room for a read when less than a quarter of the reserve is free.
///
/// An emptied buffer first goes back to the start of its allocation when nothing else still shares it (the
/// previous head's header values are dropped by then): each request then lands in the same few cache lines.
/// Without this, every request's bytes went one head further into the 16 KiB reserve, so with 50 connections
/// the reads walked through megabytes of cold memory (cache misses in the kernel's copy and in the parse).
/// `try_reclaim` never allocates; it declines when the allocation is shared or already rewound.
fn reserve(buf: &mut BytesMut) {
    if buf.is_empty() {
        let _ = buf.try_reclaim(buf.capacity() + 1);
    }
    if buf.capacity() - buf.len() < READ_RESERVE / 4 {
        buf.reserve(READ_RESERVE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_read_buffer_rewinds_to_its_start_unless_shared() {
        let mut buf = BytesMut::with_capacity(INITIAL_READ_BUF);
        reserve(&mut buf);
        let start = buf.as_ptr();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head = buf.split_to(buf.len()).freeze();
        // The head still shares the allocation: no rewind, and no new allocation either.
        reserve(&mut buf);
        assert_ne!(buf.as_ptr(), start);
        drop(head);
        reserve(&mut buf);
        assert_eq!(
            buf.as_ptr(),
            start,
            "the next read starts where the first did"
        );
        // Pipelined bytes are never moved away.
        buf.extend_from_slice(b"GET /a HTTP/1.1\r\n\r\nGET /b");
        let first = buf.split_to(19).freeze();
        drop(first);
        reserve(&mut buf);
        assert_eq!(&buf[..], b"GET /b");
    }
}
