//! The client's request body, decoded (Content-Length or chunked with trailers) from the connection's read
//! buffer while it streams upstream.
//!
//! The body and the connection driver share one [`BodyState`]: the driver lends the connection's read buffer
//! to it for the length of the body and does every socket read itself; the body only decodes what is
//! buffered. When the body needs bytes that are not there it says so (`want_read`) and returns `Pending`
//! without a waker of its own.
//!
//! Invariant: the body is only ever polled from inside the connection driver's poll (through `forward` and
//! the upstream exchange, or through the response body being written), and the driver, after every such
//! poll that returns `Pending`, reads from the socket if `want_read` is set and polls again when bytes (or
//! end of stream) arrived. So a `Pending` body is always woken by the socket's readiness.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};

use super::head::BodyFraming;

/// Longest chunk-size line accepted (size, extensions, CRLF).
const MAX_CHUNK_LINE: usize = 4096;

/// Where the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decode {
    /// Content-Length: bytes still to come.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Inside a chunk: bytes still to come.
    ChunkData(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// After the last chunk: the trailer section up to its empty line.
    Trailers,
    /// The whole body was read.
    Done,
    /// The body was malformed, or the client closed or failed mid-body: the connection cannot be reused.
    Failed,
}

/// Why the request body could not be read.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub(crate) enum BodyError {
    /// The body breaks its framing (bad chunk size or line, missing CRLF, bad or oversized trailers).
    #[error("malformed request body: {0}")]
    Malformed(&'static str),
    /// The client closed the connection (or it failed) before the body ended.
    #[error("client closed the connection mid body")]
    Closed,
}

/// The state a body shares with its connection's driver.
#[derive(Debug)]
pub(crate) struct BodyState {
    /// The connection's read buffer while a body streams; given back to the connection afterwards.
    pub(crate) buf: BytesMut,
    decode: Decode,
    /// The body needs more bytes than are buffered.
    pub(crate) want_read: bool,
    /// The client closed its side (or reading failed): no more bytes will come.
    pub(crate) eof: bool,
    /// `Expect: 100-continue` was asked and the body has not been polled yet.
    expect_continue: bool,
    /// The body was polled while `expect_continue`: the driver owes the client `100 Continue`.
    pub(crate) continue_due: bool,
    /// Largest trailer section and most trailer fields accepted (the head limits).
    max_trailer_bytes: usize,
    max_trailers: usize,
}

impl BodyState {
    /// A fresh state for a connection (no body streaming).
    pub(crate) fn new(max_trailer_bytes: usize, max_trailers: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            decode: Decode::Done,
            want_read: false,
            eof: false,
            expect_continue: false,
            continue_due: false,
            max_trailer_bytes,
            max_trailers,
        }
    }

    /// Start a body framed as `framing` (not `None`), decoding from `buf`.
    pub(crate) fn start(&mut self, buf: BytesMut, framing: BodyFraming, expect_continue: bool) {
        self.buf = buf;
        self.decode = match framing {
            BodyFraming::Length(n) => Decode::Length(n),
            BodyFraming::Chunked => Decode::ChunkSize,
            BodyFraming::None => Decode::Done,
        };
        self.want_read = false;
        self.eof = false;
        self.expect_continue = expect_continue;
        self.continue_due = false;
    }

    /// The body was read to its end without error: the connection can carry another request.
    pub(crate) fn complete(&self) -> bool {
        self.decode == Decode::Done
    }

    /// Skip buffered bytes of a Content-Length body (draining a body nobody read). Returns whether the
    /// body is now complete.
    pub(crate) fn discard_buffered(&mut self) -> bool {
        if let Decode::Length(n) = self.decode {
            let take = (self.buf.len() as u64).min(n);
            self.buf.advance(take as usize);
            self.decode = if take == n {
                Decode::Done
            } else {
                Decode::Length(n - take)
            };
        }
        self.complete()
    }

    fn fail(&mut self, err: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.decode = Decode::Failed;
        Poll::Ready(Some(Err(err)))
    }

    /// Not enough buffered: ask the driver to read, or fail if the client is gone.
    fn need_more(&mut self) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.eof {
            return self.fail(BodyError::Closed);
        }
        self.want_read = true;
        Poll::Pending
    }

    fn poll_decode(&mut self) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.expect_continue {
            self.expect_continue = false;
            self.continue_due = true;
        }
        loop {
            match self.decode {
                Decode::Done | Decode::Failed => return Poll::Ready(None),
                Decode::Length(remaining) | Decode::ChunkData(remaining) => {
                    if self.buf.is_empty() {
                        return self.need_more();
                    }
                    let take = (self.buf.len() as u64).min(remaining);
                    let data = self.buf.split_to(take as usize).freeze();
                    let left = remaining - take;
                    self.decode = match self.decode {
                        Decode::Length(_) if left == 0 => Decode::Done,
                        Decode::Length(_) => Decode::Length(left),
                        _ if left == 0 => Decode::ChunkEnd,
                        _ => Decode::ChunkData(left),
                    };
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decode::ChunkSize => {
                    let Some(line) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                        if self.buf.len() >= MAX_CHUNK_LINE {
                            return self.fail(BodyError::Malformed("chunk size line too long"));
                        }
                        return self.need_more();
                    };
                    let Some(size) = parse_chunk_size(&self.buf[..line]) else {
                        return self.fail(BodyError::Malformed("invalid chunk size"));
                    };
                    self.buf.advance(line + 2);
                    self.decode = if size == 0 {
                        Decode::Trailers
                    } else {
                        Decode::ChunkData(size)
                    };
                }
                Decode::ChunkEnd => {
                    if self.buf.len() < 2 {
                        return self.need_more();
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return self.fail(BodyError::Malformed("chunk data not followed by CRLF"));
                    }
                    self.buf.advance(2);
                    self.decode = Decode::ChunkSize;
                }
                Decode::Trailers => return self.poll_trailers(),
            }
        }
    }

    fn poll_trailers(&mut self) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut slots = vec![httparse::EMPTY_HEADER; self.max_trailers];
        let (len, trailers) = match httparse::parse_headers(&self.buf, &mut slots) {
            Ok(httparse::Status::Complete((len, fields))) => {
                let mut trailers = HeaderMap::with_capacity(fields.len());
                for field in fields {
                    let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(field.name.as_bytes()),
                        HeaderValue::from_bytes(field.value),
                    ) else {
                        return self.fail(BodyError::Malformed("invalid trailer field"));
                    };
                    trailers.append(name, value);
                }
                (len, trailers)
            }
            Ok(httparse::Status::Partial) if self.buf.len() >= self.max_trailer_bytes => {
                return self.fail(BodyError::Malformed("trailer section too large"));
            }
            Ok(httparse::Status::Partial) => return self.need_more(),
            Err(_) => return self.fail(BodyError::Malformed("invalid trailer section")),
        };
        self.buf.advance(len);
        self.decode = Decode::Done;
        if trailers.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}

/// The chunk size of a chunk-size line: 1 to 16 hex digits, optionally followed by chunk extensions
/// (`;name=value`, after optional whitespace), which are ignored. Anything else (a sign, `0x`, spaces inside
/// the number, a bare LF) is refused, so the proxy and the upstream cannot disagree on where a chunk ends.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let rest = &line[digits..];
    let rest_ok = rest.is_empty() || {
        let ext = rest.trim_ascii_start();
        ext.first() == Some(&b';') && !ext.contains(&b'\n') && !ext.contains(&b'\r')
    };
    if !rest_ok {
        return None;
    }
    line[..digits].iter().try_fold(0u64, |size, &b| {
        let d = (b as char).to_digit(16)?;
        Some((size << 4) | u64::from(d))
    })
}

/// The connection's shared body state: one per connection, created on its first request with a body and
/// reused for every later one.
pub(crate) type SharedBody = Arc<Mutex<BodyState>>;

/// Lock the shared state. Poisoning needs a panic while it is held (none of its code panics); the state is
/// consistent between statements anyway.
pub(crate) fn lock(shared: &SharedBody) -> MutexGuard<'_, BodyState> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A client's request body streamed from its HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct RequestBody {
    shared: SharedBody,
}

impl RequestBody {
    pub(crate) fn new(shared: SharedBody) -> Self {
        Self { shared }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        // No waker is registered: see the module invariant (the driver reads and polls again).
        lock(&self.shared).poll_decode()
    }

    fn is_end_stream(&self) -> bool {
        matches!(lock(&self.shared).decode, Decode::Done | Decode::Failed)
    }

    fn size_hint(&self) -> SizeHint {
        match lock(&self.shared).decode {
            Decode::Length(n) => SizeHint::with_exact(n),
            Decode::Done | Decode::Failed => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(bytes: &[u8], framing: BodyFraming) -> BodyState {
        let mut s = BodyState::new(1024, 10);
        s.start(BytesMut::from(bytes), framing, false);
        s
    }

    /// Decode everything buffered: data, trailers, and whether it ended (`Some(true)`), failed
    /// (`Some(false)`) or wants more (`None`).
    fn drain(s: &mut BodyState) -> (Vec<u8>, Option<HeaderMap>, Option<bool>) {
        let (mut data, mut trailers) = (Vec::new(), None);
        loop {
            match s.poll_decode() {
                Poll::Pending => return (data, trailers, None),
                Poll::Ready(None) => return (data, trailers, Some(true)),
                Poll::Ready(Some(Err(_))) => return (data, trailers, Some(false)),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(d) => data.extend_from_slice(&d),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                },
            }
        }
    }

    #[test]
    fn chunked_with_extensions_and_trailers_leaves_the_next_request() {
        let mut s = state(
            b"5;ext=1\r\nhello\r\n1 ; x\r\n!\r\n0\r\nX-Sum: 7\r\n\r\nGET /next",
            BodyFraming::Chunked,
        );
        let (data, trailers, end) = drain(&mut s);
        assert_eq!(data, b"hello!");
        assert_eq!(trailers.unwrap()["x-sum"], "7");
        assert_eq!(end, Some(true));
        assert!(s.complete());
        assert_eq!(&s.buf[..], b"GET /next");
    }

    #[test]
    fn partial_input_asks_for_more_and_resumes() {
        let mut s = state(b"5\r\nhel", BodyFraming::Chunked);
        let (data, _, end) = drain(&mut s);
        assert_eq!((data.as_slice(), end), (&b"hel"[..], None));
        assert!(s.want_read);
        s.buf.extend_from_slice(b"lo\r\n0\r\n\r\n");
        let (data, trailers, end) = drain(&mut s);
        assert_eq!((data.as_slice(), end), (&b"lo"[..], Some(true)));
        assert!(trailers.is_none());
    }

    #[test]
    fn bad_chunks_fail() {
        for bad in [
            &b"x\r\n"[..],
            b"-5\r\n",
            b"0x5\r\n",
            b"5 5\r\n",
            b"11111111111111111\r\nx",
            b"5\r\nhelloXX",
            b"5\n\r\nhello",
        ] {
            let mut s = state(bad, BodyFraming::Chunked);
            assert_eq!(drain(&mut s).2, Some(false), "{bad:?}");
            assert!(!s.complete());
        }
    }

    #[test]
    fn a_length_body_stops_at_its_length_and_eof_fails_it() {
        let mut s = state(b"abcGET", BodyFraming::Length(3));
        assert_eq!(drain(&mut s), (b"abc".to_vec(), None, Some(true)));
        assert_eq!(&s.buf[..], b"GET");
        let mut short = state(b"ab", BodyFraming::Length(3));
        assert_eq!(drain(&mut short).2, None);
        short.eof = true;
        assert_eq!(drain(&mut short).2, Some(false));
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"FF;ext=1"), Some(255));
        assert_eq!(parse_chunk_size(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b" 1"), None);
    }
}
