//! The upstream HTTP/1.1 codec: one exchange (request out, response back) on a pooled `TcpStream`, driven
//! entirely by the request's own task.
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

use std::future::poll_fn;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;

use crate::body::{RequestBodyError, UpstreamBody};
use crate::pool::Pooled;

/// Most header fields accepted in an upstream response head (and in a chunked body's trailer section).
const MAX_RESPONSE_HEADERS: usize = 128;
/// Longest chunk-size line accepted (size, extensions, CRLF).
const MAX_CHUNK_LINE: usize = 4096;
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

/// Write the request head (origin-form target, `parts.headers` as they are) into `out`. Returns whether the
/// body goes chunked (it adds `Transfer-Encoding: chunked`).
fn encode_head(parts: &request::Parts, body: Option<&UpstreamBody>, out: &mut Vec<u8>) -> bool {
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
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
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
                            } else if !self.chunked {
                                // A length-delimited body has nowhere to put trailers: drop them, keep going.
                            }
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
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        max_head: usize,
    ) -> Poll<Result<Response<()>, SendError>> {
        loop {
            if let Poll::Ready(Err(err)) = self.poll_write_request(cx) {
                return Poll::Ready(Err(err.into()));
            }
            let conn = conn!(self);
            if !conn.read_buf.is_empty() {
                match parse_head(&mut conn.read_buf, max_head)? {
                    Some(head) if head.status().is_informational() => continue,
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

/// Parse a response head at the start of `buf`; on success remove it from `buf`. `None`: incomplete.
/// 101 is refused (the proxy never asks for an upgrade); other 1xx heads are returned for the caller to skip.
fn parse_head(buf: &mut BytesMut, max_head: usize) -> io::Result<Option<Response<()>>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => {
            return Err(invalid("response head too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(invalid_owned(format!("invalid response head: {err}"))),
    };
    if len > max_head {
        return Err(invalid("response head too large"));
    }
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| invalid("invalid status code"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(invalid("unexpected 101 Switching Protocols"));
    }
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Header values are sliced out of the frozen head (no copy per value); record where they are first,
    // since the parsed slices borrow the buffer.
    let base = buf.as_ptr() as usize;
    let mut spans = [(0usize, 0usize, 0usize, 0usize); MAX_RESPONSE_HEADERS];
    let count = parsed.headers.len();
    for (span, h) in spans.iter_mut().zip(parsed.headers.iter()) {
        let name = h.name.as_ptr() as usize - base;
        let value = h.value.as_ptr() as usize - base;
        *span = (name, name + h.name.len(), value, value + h.value.len());
    }
    let head = buf.split_to(len).freeze();
    let mut map = HeaderMap::with_capacity(count);
    for &(ns, ne, vs, ve) in &spans[..count] {
        let name =
            HeaderName::from_bytes(&head[ns..ne]).map_err(|_| invalid("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
            .map_err(|_| invalid("invalid header value"))?;
        map.append(name, value);
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = map;
    Ok(Some(response))
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn invalid_owned(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Whether any `Connection` field lists `token`.
fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// How the response body is delimited (RFC 9112 §6.3).
fn response_framing(method: &Method, head: &Response<()>) -> io::Result<Framing> {
    let status = head.status();
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Done);
    }
    let headers = head.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|t| !t.is_empty());
        return Ok(match last {
            Some(t) if t.eq_ignore_ascii_case("chunked") => Framing::Chunked(Chunk::Size),
            _ => Framing::Close,
        });
    }
    let mut length: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value
            .to_str()
            .map_err(|_| invalid("invalid Content-Length"))?
            .split(',')
        {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("invalid Content-Length"));
            }
            let n: u64 = part
                .parse()
                .map_err(|_| invalid("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("conflicting Content-Length"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => Framing::Done,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

/// Send one request on `conn` and read the response head. See [`Attempt`] for when a retry is offered.
pub(crate) async fn exchange(
    conn: Pooled,
    parts: &request::Parts,
    body: Option<UpstreamBody>,
    max_head: usize,
) -> Attempt {
    let reused = conn.reused();
    let mut conn = conn;
    // An empty body needs no polling: the head is the whole request.
    let body = body.filter(|b| !b.is_end_stream());
    let chunked = encode_head(parts, body.as_ref(), &mut conn.write_buf);
    let mut ex = Exchange {
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
    };
    let head = poll_fn(|cx| ex.poll_head(cx, max_head)).await;
    let head = match head {
        Ok(head) => head,
        Err(SendError::Io(err))
            if reused && ex.received == 0 && !ex.body_touched && is_closed(&err) =>
        {
            return Attempt::Retry(ex.body.take());
        }
        Err(err) => return Attempt::Done(Err(err)),
    };
    let framing = match response_framing(&parts.method, &head) {
        Ok(framing) => framing,
        Err(err) => return Attempt::Done(Err(err.into())),
    };
    let reusable = head.version() == Version::HTTP_11
        && !matches!(framing, Framing::Close)
        && !connection_has(head.headers(), "close");
    let mut body = ResponseBody {
        ex,
        framing,
        reusable,
    };
    if matches!(body.framing, Framing::Done) {
        // Nothing to read: give the connection back now if the request is out, so an empty body that is
        // never polled still returns it.
        body.finish();
    }
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

/// Where the response body decoder is.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// Complete (or no body at all).
    Done,
    /// Content-Length: bytes still to come.
    Length(u64),
    /// Until the upstream closes (never reusable).
    Close,
    Chunked(Chunk),
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk: bytes still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: the trailer section up to its empty line.
    Trailers,
}

/// A response body read straight from the upstream socket by whoever polls it (hyper's server, on the
/// client connection's task). Owns the connection; see the module invariants for when it is pooled again.
pub(crate) struct ResponseBody {
    ex: Exchange,
    framing: Framing,
    reusable: bool,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// The body ended cleanly: pool the connection if everything allows it, else close it.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if !self.ex.req_done {
            // The request body is still streaming: the connection stays with this body until it is out
            // (polled again) or is dropped with it.
            return;
        }
        if let Some(conn) = self.ex.conn.take() {
            if self.reusable && self.ex.req_ok && conn.read_buf.is_empty() && self.ex.cur.is_empty()
            {
                conn.release();
            }
        }
    }

    /// Up to `max` bytes of body data, reading from the socket if nothing is buffered. `eof_ok`: end of
    /// stream is the body's end (close-delimited) rather than an error.
    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
        max: u64,
        eof_ok: bool,
    ) -> Poll<io::Result<Option<Bytes>>> {
        let buffered = self.ex.conn.as_ref().map_or(0, |c| c.read_buf.len());
        if buffered == 0 && ready!(self.ex.poll_fill(cx))? == 0 {
            return Poll::Ready(if eof_ok {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "upstream closed mid body",
                ))
            });
        }
        let Some(conn) = self.ex.conn.as_mut() else {
            return Poll::Ready(Ok(None));
        };
        let take = (conn.read_buf.len() as u64).min(max) as usize;
        Poll::Ready(Ok(Some(conn.read_buf.split_to(take).freeze())))
    }

    /// Make sure `n` bytes are buffered (or fail at end of stream).
    fn poll_buffered(
        &mut self,
        cx: &mut Context<'_>,
        n: usize,
        limit: usize,
    ) -> Poll<io::Result<()>> {
        loop {
            let buffered = self.ex.conn.as_ref().map_or(0, |c| c.read_buf.len());
            if buffered >= n {
                return Poll::Ready(Ok(()));
            }
            if buffered >= limit {
                return Poll::Ready(Err(invalid("chunk framing line too long")));
            }
            if ready!(self.ex.poll_fill(cx))? == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "upstream closed mid body",
                )));
            }
        }
    }

    fn poll_decode(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        loop {
            match self.framing {
                Framing::Done => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(remaining) => {
                    let Some(data) = ready!(self.poll_data(cx, remaining, false))? else {
                        return Poll::Ready(None);
                    };
                    let left = remaining - data.len() as u64;
                    self.framing = Framing::Length(left);
                    if left == 0 {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Close => match ready!(self.poll_data(cx, u64::MAX, true))? {
                    Some(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    None => {
                        self.finish();
                        return Poll::Ready(None);
                    }
                },
                Framing::Chunked(Chunk::Size) => {
                    let line = loop {
                        let buf = self
                            .ex
                            .conn
                            .as_ref()
                            .map(|c| &c.read_buf[..])
                            .unwrap_or(&[]);
                        if let Some(pos) = buf.windows(2).position(|w| w == b"\r\n") {
                            break pos;
                        }
                        let want = buf.len() + 1;
                        ready!(self.poll_buffered(cx, want, MAX_CHUNK_LINE))?;
                    };
                    let Some(conn) = self.ex.conn.as_mut() else {
                        return Poll::Ready(None);
                    };
                    let size = parse_chunk_size(&conn.read_buf[..line])?;
                    conn.read_buf.advance(line + 2);
                    self.framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
                Framing::Chunked(Chunk::Data(remaining)) => {
                    let Some(data) = ready!(self.poll_data(cx, remaining, false))? else {
                        return Poll::Ready(None);
                    };
                    let left = remaining - data.len() as u64;
                    self.framing = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    ready!(self.poll_buffered(cx, 2, usize::MAX))?;
                    let Some(conn) = self.ex.conn.as_mut() else {
                        return Poll::Ready(None);
                    };
                    if &conn.read_buf[..2] != b"\r\n" {
                        return Poll::Ready(Some(Err(invalid("missing CRLF after chunk data"))));
                    }
                    conn.read_buf.advance(2);
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    let Some(conn) = self.ex.conn.as_mut() else {
                        return Poll::Ready(None);
                    };
                    if conn.read_buf.starts_with(b"\r\n") {
                        conn.read_buf.advance(2);
                        self.finish();
                        return Poll::Ready(None);
                    }
                    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
                    match httparse::parse_headers(&conn.read_buf, &mut headers) {
                        Ok(httparse::Status::Complete((len, fields))) => {
                            let mut trailers = HeaderMap::with_capacity(fields.len());
                            for h in fields.iter() {
                                let name = HeaderName::from_bytes(h.name.as_bytes())
                                    .map_err(|_| invalid("invalid trailer name"))?;
                                let value = HeaderValue::from_bytes(h.value)
                                    .map_err(|_| invalid("invalid trailer value"))?;
                                trailers.append(name, value);
                            }
                            conn.read_buf.advance(len);
                            self.finish();
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                        Ok(httparse::Status::Partial) => {
                            let want = conn.read_buf.len() + 1;
                            ready!(self.poll_buffered(cx, want, 64 * 1024))?;
                        }
                        Err(err) => {
                            return Poll::Ready(Some(Err(invalid_owned(format!(
                                "invalid trailers: {err}"
                            )))))
                        }
                    }
                }
            }
        }
    }
}

/// The hexadecimal size of a chunk-size line (extensions after `;` ignored).
fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or(&[]);
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return Err(invalid("invalid chunk size"));
    }
    let mut size = 0u64;
    for &b in digits {
        let d = (b as char)
            .to_digit(16)
            .ok_or_else(|| invalid("invalid chunk size"))?;
        size = (size << 4) | u64::from(d);
    }
    Ok(size)
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        // The rest of the request body goes out whenever the response is read (full duplex streaming).
        if !this.ex.req_done {
            if let Poll::Ready(Err(err)) = this.ex.poll_write_request(cx) {
                this.ex.conn = None;
                return Poll::Ready(Some(Err(io::Error::other(err))));
            }
            if matches!(this.framing, Framing::Done) {
                this.finish();
            }
        }
        let polled = this.poll_decode(cx);
        if let Poll::Ready(Some(Err(_))) = polled {
            // A broken exchange: close the connection.
            this.ex.conn = None;
            this.framing = Framing::Done;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Done => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"FF;ext=1").unwrap(), 255);
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"xyz").is_err());
        assert!(parse_chunk_size(b"11111111111111111").is_err());
    }

    #[test]
    fn heads_parse_skip_nothing_and_limit_size() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok"[..]);
        let head = parse_head(&mut buf, 8192).unwrap().unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["x-a"], "b");
        assert_eq!(&buf[..], b"ok");
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX-A: b"[..]);
        assert!(parse_head(&mut partial, 8192).unwrap().is_none());
        assert!(parse_head(&mut partial, 10).is_err());
    }

    #[test]
    fn framing_rules() {
        let head = |pairs: &[(&str, &str)], status: u16| {
            let mut b = Response::builder().status(status);
            for (k, v) in pairs {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        let get = Method::GET;
        assert!(matches!(
            response_framing(&get, &head(&[("content-length", "5")], 200)).unwrap(),
            Framing::Length(5)
        ));
        assert!(matches!(
            response_framing(&Method::HEAD, &head(&[("content-length", "5")], 200)).unwrap(),
            Framing::Done
        ));
        assert!(matches!(
            response_framing(&get, &head(&[], 304)).unwrap(),
            Framing::Done
        ));
        assert!(matches!(
            response_framing(
                &get,
                &head(
                    &[
                        ("transfer-encoding", "gzip, chunked"),
                        ("content-length", "5")
                    ],
                    200
                )
            )
            .unwrap(),
            Framing::Chunked(Chunk::Size)
        ));
        assert!(matches!(
            response_framing(&get, &head(&[], 200)).unwrap(),
            Framing::Close
        ));
        assert!(response_framing(
            &get,
            &head(&[("content-length", "5"), ("content-length", "6")], 200)
        )
        .is_err());
    }
}
