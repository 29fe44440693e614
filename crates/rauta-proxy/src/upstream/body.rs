//! The upstream response body: decoded straight from the socket (length, chunked with trailers,
//! close-delimited) by whoever polls it, and the connection pooled again when it ends cleanly.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};

use super::head::{invalid, invalid_owned, MAX_RESPONSE_HEADERS};
use super::Exchange;

/// Longest chunk-size line accepted (size, extensions, CRLF).
const MAX_CHUNK_LINE: usize = 4096;

/// Where the response body decoder is.
#[derive(Debug, Clone, Copy)]
pub(super) enum Framing {
    /// Complete (or no body at all).
    Done,
    /// Content-Length: bytes still to come.
    Length(u64),
    /// Until the upstream closes (never reusable).
    Close,
    Chunked(Chunk),
    /// A `101 Switching Protocols` answer: no body; the connection is taken over by the tunnel
    /// ([`ResponseBody::into_upgraded`]) and never pooled.
    Upgraded,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk: bytes still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: the trailer section up to its empty line.
    Trailers,
}

/// A response body read straight from the upstream socket by whoever polls it (the client codec, on the
/// client connection's task). Owns the connection; see the module invariants for when it is pooled again.
pub(crate) struct ResponseBody {
    /// Boxed where the exchange starts (see `upstream::exchange`): the response is moved through several
    /// layers on every request.
    ex: Box<Exchange>,
    framing: Framing,
    reusable: bool,
}

/// A response head's end-to-end fields as the upstream sent them, each `name: value\r\n` (see
/// `head::parse_head`).
#[derive(Debug)]
pub(crate) struct PassedFields {
    pub(crate) bytes: Vec<u8>,
    /// A `Date` field is among them.
    pub(crate) has_date: bool,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// The body of the exchange `ex`, delimited as `framing` says; `reusable`: the response head allows
    /// keeping the connection.
    ///
    /// `passed`: the head's fields as bytes, when they were not put into a map.
    pub(super) fn new(
        ex: Box<Exchange>,
        framing: Framing,
        reusable: bool,
        passed: Option<PassedFields>,
    ) -> Self {
        let mut body = Self {
            ex,
            framing,
            reusable,
        };
        if matches!(body.framing, Framing::Done) {
            // Nothing to read: give the connection back now if the request is out, so an empty body that
            // is never polled still returns it (without the fields buffer, which the client's head still
            // needs: the next head on that connection allocates one).
            body.finish();
        }
        body.ex.passed = passed;
        body
    }

    /// The head's fields passed through as bytes (see [`PassedFields`]), if they were.
    pub(crate) fn passed(&self) -> Option<&PassedFields> {
        self.ex.passed.as_ref()
    }

    /// The connection and the bytes the upstream sent after its `101` head, for the tunnel; `None` unless
    /// this is the answer to an upgrade.
    pub(crate) fn into_upgraded(mut self) -> Option<(super::tls::UpstreamIo, bytes::BytesMut)> {
        if !matches!(self.framing, Framing::Upgraded) {
            return None;
        }
        let conn = self.ex.conn.take()?;
        Some(conn.into_parts())
    }

    /// The body ended cleanly: pool the connection if everything allows it, else close it.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if !self.ex.req_done {
            // The request body is still streaming: the connection stays with this body until it is out
            // (polled again) or is dropped with it.
            return;
        }
        if let Some(mut conn) = self.ex.conn.take() {
            if self.reusable && self.ex.req_ok && conn.read_buf.is_empty() && self.ex.cur.is_empty()
            {
                // The body is being read, so the client's head was written: the fields buffer goes back
                // with the connection, to be reused by its next response.
                if let Some(passed) = self.ex.passed.take() {
                    conn.fields = passed.bytes;
                }
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
                Framing::Upgraded => return Poll::Ready(None),
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
        matches!(self.framing, Framing::Done | Framing::Upgraded)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Done | Framing::Upgraded => SizeHint::with_exact(0),
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
}
