//! The upstream HTTP/1.1 codec: one exchange (request out, response back) on a pooled `TcpStream`, driven
//! entirely by the request's own task.
//!
//! Backends whose Service port says `appProtocol: kubernetes.io/h2c` are spoken to over HTTP/2 instead:
//! `h2` (hyper's client, one multiplexed connection per endpoint) and `h2_body` (its request and response
//! bodies).
//!
//! hyper's client runs each connection as a separate task and passes the request, the response head and
//! every body frame over channels; here the request's task writes the head and body and reads the response
//! itself, as nginx and Pingora do. That saves the channel hops, task wake-ups and moves per request.
//!
//! Invariants:
//! - A connection goes back to the pool only when the response body ended cleanly, the whole request was
//!   written, the response allows reuse (HTTP/1.1, no `Connection: close`, not close-delimited) and no
//!   byte beyond the response was received. Any other end (error, abandoned body) drops and so closes it.
//! - Until the response head arrives, writing the request body and reading the response run side by side
//!   (an upstream may answer, or echo, before the request body ends); after it, the response body keeps
//!   writing whatever is left of the request body whenever it is polled.

mod body;
mod h2;
mod h2_body;
mod head;
pub(crate) mod tls;

use std::future::{poll_fn, Future};
use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::header;
use http::{request, Method, Response, Version};
use http_body::Body;
use tokio::io::AsyncWrite;

use crate::body::{RequestBodyError, UpstreamBody};
use crate::headers::Forwarding;
use crate::pool::Pooled;

use body::Framing;
pub(crate) use body::{PassedFields, ResponseBody};
pub(crate) use h2::{prepare as prepare_h2, H2Pool};
pub(crate) use h2_body::H2ResponseBody;
pub(crate) use head::FieldSpans;
use head::{connection_has, parse_head, response_framing, ParsedHead};

/// Request body frames up to this size are copied next to their framing so both go out in one write.
const COPY_BELOW: usize = 16 * 1024;
/// Free space kept in the read buffer before each read.
const READ_RESERVE: usize = 16 * 1024;

/// Why an exchange failed before a response head arrived.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// Streaming the client's body failed or tripped the size limit.
    #[error(transparent)]
    Body(#[from] RequestBodyError),
    /// The socket failed, the upstream closed early or sent something that is not a valid response head.
    #[error("upstream: {0}")]
    Io(#[from] io::Error),
}

/// The outcome of one attempt: either done (any result) or worth one retry on a fresh connection.
// Returned once per exchange and matched at once: boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Attempt {
    Done(Result<Response<ResponseBody>, SendError>),
    /// A reused connection closed without sending a byte while nothing of the request body was consumed:
    /// the upstream dropped the idle connection; the request can be sent again as it was.
    /// The body is `None` when it was empty (or ended without data).
    Retry(Option<UpstreamBody>),
}

/// Write the request head (origin-form target, `parts.headers` as they are, then the forwarding fields)
/// into `out`. Returns whether the body goes chunked (it adds `Transfer-Encoding: chunked`).
fn encode_head(
    parts: &request::Parts,
    forwarding: &Forwarding<'_>,
    body: Option<&UpstreamBody>,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host = None;
    for (name, value) in &parts.headers {
        // The first Host, as `HeaderMap::get` (and so `add_forwarded`) would take it.
        if host.is_none() && name == header::HOST {
            host = Some(value);
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    forwarding.encode(host, out);
    // The client's body framing: a declared length passes with its Content-Length header (the downstream
    // codec enforces it); anything else with data is re-encoded chunked (Transfer-Encoding was stripped as
    // hop-by-hop).
    let chunked = body.is_some_and(|body| {
        let declared = parts.headers.contains_key(header::CONTENT_LENGTH)
            && body.size_hint().exact().is_some();
        !body.is_end_stream() && !declared
    });
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    chunked
}

/// One request/response exchange on a checked-out connection.
struct Exchange {
    conn: Option<Pooled>,
    /// Bytes of `conn.write_buf` already written.
    out_pos: usize,
    /// A large body frame being written after the framing bytes.
    cur: Bytes,
    /// A chunk's closing CRLF is due after `cur`.
    crlf_after: bool,
    /// The request body still to stream; `None` once its end (and framing) is queued.
    body: Option<UpstreamBody>,
    chunked: bool,
    /// Everything of the request is written (or writing stopped on an error).
    req_done: bool,
    /// The request was written completely and without error.
    req_ok: bool,
    /// A body frame was taken from the client: the request can no longer be replayed.
    body_touched: bool,
    /// Response bytes received on this exchange.
    received: usize,
    /// The response head's fields passed through as bytes, for the client codec to copy (`None`: they are
    /// in the response's header map). Here rather than in `ResponseBody`, which is moved whole through
    /// every layer the response passes.
    passed: Option<PassedFields>,
}

/// The connection, known to be present while the exchange runs.
macro_rules! conn {
    ($self:expr) => {
        match $self.conn.as_mut() {
            Some(conn) => conn,
            None => {
                return Poll::Ready(Err(io::Error::other(
                    "upstream connection already released",
                )
                .into()))
            }
        }
    };
}

impl Exchange {
    /// Write as much of the request as can go now. `Ready(Ok)` once all of it is written; a socket error
    /// ends writing (`req_done`, not `req_ok`) but is not returned, so a response the upstream already sent
    /// can still be read; a client body error is returned.
    fn poll_write_request(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RequestBodyError>> {
        if self.req_done {
            return Poll::Ready(Ok(()));
        }
        let Some(conn) = self.conn.as_mut() else {
            self.req_done = true;
            return Poll::Ready(Ok(()));
        };
        loop {
            while self.out_pos < conn.write_buf.len() {
                match Pin::new(&mut conn.stream).poll_write(cx, &conn.write_buf[self.out_pos..]) {
                    Poll::Ready(Ok(n)) if n > 0 => self.out_pos += n,
                    Poll::Ready(_) => {
                        self.req_done = true;
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            conn.write_buf.clear();
            self.out_pos = 0;
            while !self.cur.is_empty() {
                match Pin::new(&mut conn.stream).poll_write(cx, &self.cur) {
                    Poll::Ready(Ok(n)) if n > 0 => self.cur.advance(n),
                    Poll::Ready(_) => {
                        self.req_done = true;
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            if std::mem::take(&mut self.crlf_after) {
                conn.write_buf.extend_from_slice(b"\r\n");
                continue;
            }
            let Some(body) = self.body.as_mut() else {
                self.req_done = true;
                self.req_ok = true;
                return Poll::Ready(Ok(()));
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(err))) => {
                    self.body_touched = true;
                    self.body = None;
                    self.req_done = true;
                    return Poll::Ready(Err(err));
                }
                Poll::Ready(None) => {
                    self.body = None;
                    if self.chunked {
                        conn.write_buf.extend_from_slice(b"0\r\n\r\n");
                    }
                }
                Poll::Ready(Some(Ok(frame))) => {
                    self.body_touched = true;
                    match frame.into_data() {
                        Ok(data) if data.is_empty() => {}
                        Ok(data) => {
                            if self.chunked {
                                // Writing into a Vec cannot fail.
                                let _ = write!(conn.write_buf, "{:x}\r\n", data.len());
                            }
                            if data.len() < COPY_BELOW {
                                conn.write_buf.extend_from_slice(&data);
                                if self.chunked {
                                    conn.write_buf.extend_from_slice(b"\r\n");
                                }
                            } else {
                                self.cur = data;
                                self.crlf_after = self.chunked;
                            }
                        }
                        Err(frame) => {
                            // Trailers end the body; they only have a place in chunked framing.
                            if let (Ok(trailers), true) = (frame.into_trailers(), self.chunked) {
                                conn.write_buf.extend_from_slice(b"0\r\n");
                                for (name, value) in &trailers {
                                    conn.write_buf.extend_from_slice(name.as_str().as_bytes());
                                    conn.write_buf.extend_from_slice(b": ");
                                    conn.write_buf.extend_from_slice(value.as_bytes());
                                    conn.write_buf.extend_from_slice(b"\r\n");
                                }
                                conn.write_buf.extend_from_slice(b"\r\n");
                                self.body = None;
                            }
                            // A length-delimited body has nowhere to put trailers: they are dropped.
                        }
                    }
                }
            }
        }
    }

    /// Read more response bytes into the read buffer. `Ready(Ok(0))` is end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        // As on the client side (`downstream::reserve`): an emptied buffer rewinds to the start of its
        // allocation, so every response lands in the same cache lines instead of walking the reserve.
        if conn.read_buf.is_empty() {
            let _ = conn.read_buf.try_reclaim(conn.read_buf.capacity() + 1);
        }
        if conn.read_buf.capacity() - conn.read_buf.len() < READ_RESERVE / 4 {
            conn.read_buf.reserve(READ_RESERVE);
        }
        // tokio's `poll_read` clears the socket's readiness after a short read (the socket is drained), so
        // the next read and the pool's idle check need no extra syscall to learn it would block.
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut conn.stream),
            cx,
            &mut conn.read_buf
        ))?;
        self.received += n;
        Poll::Ready(Ok(n))
    }

    /// Drive the request out and read until a final (non-1xx) response head is parsed.
    /// `pass`: the request's method when the response head may pass through as bytes (see `parse_head`).
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        max_head: usize,
        pass: Option<&Method>,
    ) -> Poll<Result<ParsedHead, SendError>> {
        loop {
            if let Poll::Ready(Err(err)) = self.poll_write_request(cx) {
                return Poll::Ready(Err(err.into()));
            }
            let conn = conn!(self);
            if !conn.read_buf.is_empty() {
                let pass = pass.map(|method| (method, &mut conn.fields));
                match parse_head(&mut conn.read_buf, max_head, &mut conn.spans, pass)? {
                    Some(head)
                        if head.status().is_informational()
                            && head.status() != http::StatusCode::SWITCHING_PROTOCOLS =>
                    {
                        continue
                    }
                    Some(head) => return Poll::Ready(Ok(head)),
                    None => {}
                }
            }
            if ready!(self.poll_fill(cx)).map_err(SendError::Io)? == 0 {
                let err = if self.received == 0 {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "upstream closed before responding",
                    )
                } else {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "upstream closed mid response head",
                    )
                };
                return Poll::Ready(Err(err.into()));
            }
        }
    }
}

/// Send one request on `conn` and read the response head. See [`Attempt`] for when a retry is offered.
///
/// A plain `poll_fn` over the exchange rather than an `async fn`: the future is moved (copied whole) into
/// each layer that awaits it, on every request, and an `async fn` would keep its arguments and locals
/// (the connection twice, the body twice) next to the exchange that owns them.
pub(crate) fn exchange<'a>(
    mut conn: Pooled,
    parts: &'a request::Parts,
    forwarding: &Forwarding<'_>,
    body: Option<UpstreamBody>,
    max_head: usize,
) -> impl Future<Output = Attempt> + Send + 'a {
    let reused = conn.reused();
    // An empty body needs no polling: the head is the whole request.
    let body = body.filter(|b| !b.is_end_stream());
    let chunked = encode_head(parts, forwarding, body.as_ref(), &mut conn.write_buf);
    // Boxed: the exchange (connection, buffers, request body: ~350 bytes) then travels as a pointer, first
    // in this future through every layer that awaits it, then in the response body through every layer
    // the response passes. Moved inline, those copies were ~12% of the request path's user-space
    // instructions (callgrind: ~25 `memcpy`s of a few hundred bytes per request); one allocation is cheaper.
    let mut ex = Some(Box::new(Exchange {
        conn: Some(conn),
        out_pos: 0,
        cur: Bytes::new(),
        crlf_after: false,
        body,
        chunked,
        req_done: false,
        req_ok: false,
        body_touched: false,
        received: 0,
        passed: None,
    }));
    // Only RAUTA's own HTTP/1 codec writes a passed-through head; an HTTP/2 client's response goes through
    // hyper, which needs the header map.
    let pass = (parts.version != Version::HTTP_2).then_some(&parts.method);
    poll_fn(move |cx| {
        let head = match ex.as_mut() {
            Some(running) => ready!(running.poll_head(cx, max_head, pass)),
            None => return Poll::Ready(polled_after_completion()),
        };
        Poll::Ready(match ex.take() {
            Some(done) => conclude(done, head, parts, reused),
            None => polled_after_completion(),
        })
    })
}

/// The answer to a misuse that cannot happen through `Pool` (which awaits each exchange once).
fn polled_after_completion() -> Attempt {
    Attempt::Done(Err(SendError::Io(io::Error::other(
        "upstream exchange polled after it completed",
    ))))
}

/// What an exchange whose response head arrived (or failed) turns into.
fn conclude(
    mut ex: Box<Exchange>,
    head: Result<ParsedHead, SendError>,
    parts: &request::Parts,
    reused: bool,
) -> Attempt {
    let head = match head {
        Ok(ParsedHead::Map(head)) => head,
        Ok(ParsedHead::Passed(head, meta)) => {
            let reusable = head.version() == Version::HTTP_11
                && !matches!(meta.framing, Framing::Close)
                && !meta.close;
            let fields = ex
                .conn
                .as_mut()
                .map(|conn| std::mem::take(&mut conn.fields))
                .unwrap_or_default();
            let passed = PassedFields {
                bytes: fields,
                has_date: meta.has_date,
            };
            let body = ResponseBody::new(ex, meta.framing, reusable, Some(passed));
            let (parts, ()) = head.into_parts();
            return Attempt::Done(Ok(Response::from_parts(parts, body)));
        }
        Err(SendError::Io(err))
            if reused && ex.received == 0 && !ex.body_touched && is_closed(&err) =>
        {
            return Attempt::Retry(ex.body.take());
        }
        Err(err) => return Attempt::Done(Err(err)),
    };
    let framing = if head.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        // Only an upgrade request (which alone keeps its `Upgrade` field past hop-by-hop stripping) may be
        // answered 101; the connection then belongs to the tunnel.
        if !parts.headers.contains_key(header::UPGRADE) {
            return Attempt::Done(Err(SendError::Io(head::invalid(
                "unexpected 101 Switching Protocols",
            ))));
        }
        Framing::Upgraded
    } else {
        match response_framing(&parts.method, &head) {
            Ok(framing) => framing,
            Err(err) => return Attempt::Done(Err(err.into())),
        }
    };
    let reusable = head.version() == Version::HTTP_11
        && !matches!(framing, Framing::Close)
        && !connection_has(head.headers(), "close");
    let body = ResponseBody::new(ex, framing, reusable, None);
    let (parts, ()) = head.into_parts();
    Attempt::Done(Ok(Response::from_parts(parts, body)))
}

/// A socket error meaning the peer closed or reset the connection.
fn is_closed(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}
