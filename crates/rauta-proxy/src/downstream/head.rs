//! The client's request head: parsed with httparse into `http` types, and what it says about the body, the
//! connection and an upgrade.
//!
//! Body framing follows RFC 9112 §6 strictly, because a proxy that reads a body's length differently from
//! the server behind it lets a client smuggle a second request inside the first: Transfer-Encoding together
//! with Content-Length, Transfer-Encoding on HTTP/1.0, a Transfer-Encoding whose last coding is not
//! `chunked` (or that applies `chunked` twice), and a Content-Length that is not one decimal number (repeats
//! must agree) are all refused with 400.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, Request, Uri, Version};

use crate::error::ProxyError;

/// Header slots on the stack; a configured `max_headers` above this parses into a heap array instead.
const STACK_HEADERS: usize = 128;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body (no Content-Length and no Transfer-Encoding, or `Content-Length: 0`).
    None,
    /// `Content-Length`: exactly this many bytes (more than 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Marks a request the client asked to upgrade to WebSocket (in the request's extensions), so that
/// `forward` keeps the `Connection: upgrade` and `Upgrade` fields it would otherwise strip as hop-by-hop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpgradeRequest;

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    /// Method, target, version and header fields as received.
    pub parts: request::Parts,
    pub framing: BodyFraming,
    /// The client allows the connection to stay open after this exchange (HTTP/1.1 without
    /// `Connection: close`, HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1: answer 100 before reading the body.
    pub expect_continue: bool,
    /// `TE: trailers`: the client accepts trailer fields in a chunked response.
    pub accepts_trailers: bool,
    /// An HTTP/1.1 `Connection: upgrade` + `Upgrade: websocket` request without a body.
    pub upgrade: bool,
}

/// Where a field's name and value sit in the head: byte offsets (name start, name end, value start, value
/// end). The connection keeps one vector of these across requests, so parsing allocates nothing for it.
pub(crate) type FieldSpans = Vec<[usize; 4]>;

/// Parse a request head at the start of `buf`; on success remove it from `buf` (the rest is the body or
/// the next pipelined request). `Ok(None)`: incomplete, read more. `spans` is scratch space, and `spare` a
/// header map whose allocation the head's map takes over (the connection passes the previous response's
/// map, so a request allocates no map of its own); it is left empty.
///
/// A head over `max_bytes`, complete or not, or with more than `max_headers` fields is
/// [`ProxyError::HeadTooLarge`] (431); anything else invalid is [`ProxyError::Malformed`] (400).
pub(crate) fn parse_head(
    buf: &mut BytesMut,
    max_bytes: usize,
    max_headers: usize,
    spans: &mut FieldSpans,
    spare: &mut HeaderMap,
) -> Result<Option<Head>, ProxyError> {
    // The parse borrows `buf`; everything needed afterwards is taken out (owned, or as offsets) inside this
    // block so that `split_to` can then take the head over.
    let (len, method, version, target) = {
        // Uninitialised slots: httparse fills only what it parses, so a large limit costs nothing per request.
        let mut stack;
        let mut heap;
        let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if max_headers <= STACK_HEADERS {
            stack = [const { MaybeUninit::uninit() }; STACK_HEADERS];
            &mut stack[..max_headers]
        } else {
            heap = Vec::with_capacity(max_headers);
            heap.resize_with(max_headers, MaybeUninit::uninit);
            &mut heap[..]
        };
        let mut parsed = httparse::Request::new(&mut []);
        let len = match parsed.parse_with_uninit_headers(buf, slots) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= max_bytes => {
                return Err(ProxyError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(ProxyError::HeadTooLarge),
            Err(_) => return Err(ProxyError::Malformed("invalid request head")),
        };
        if len > max_bytes {
            return Err(ProxyError::HeadTooLarge);
        }
        let method = Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
            .map_err(|_| ProxyError::Malformed("invalid method"))?;
        let version = match parsed.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        // The target and the header values are sliced out of the frozen head below (no copy per value).
        let base = buf.as_ptr() as usize;
        let span = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            (start, start + s.len())
        };
        spans.clear();
        spans.extend(parsed.headers.iter().map(|h| {
            let (name, value) = (span(h.name.as_bytes()), span(h.value));
            [name.0, name.1, value.0, value.1]
        }));
        (
            len,
            method,
            version,
            span(parsed.path.unwrap_or("").as_bytes()),
        )
    };
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.1))
        .map_err(|_| ProxyError::Malformed("invalid request target"))?;
    // Room for the four forwarding fields `forward` adds, so the map does not grow for them.
    let mut headers = std::mem::take(spare);
    headers.clear();
    headers.reserve(spans.len() + 4);
    let mut scan = Scan::default();
    for &[ns, ne, vs, ve] in spans.iter() {
        let name = HeaderName::from_bytes(&head[ns..ne])
            .map_err(|_| ProxyError::Malformed("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
            .map_err(|_| ProxyError::Malformed("invalid header value"))?;
        scan.note(&name, &value)?;
        headers.append(name, value);
    }
    let framing = scan.framing(version)?;
    let upgrade = version == Version::HTTP_11
        && framing == BodyFraming::None
        && scan.connection_upgrade
        && scan.upgrade_websocket;
    let keep_alive = match version {
        Version::HTTP_10 => scan.connection_keep_alive && !scan.connection_close,
        _ => !scan.connection_close,
    };
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    if upgrade {
        request.extensions_mut().insert(UpgradeRequest);
    }
    let (parts, ()) = request.into_parts();
    Ok(Some(Head {
        parts,
        framing,
        keep_alive,
        expect_continue: version == Version::HTTP_11 && scan.expect_continue,
        accepts_trailers: scan.te_trailers,
        upgrade,
    }))
}

/// What the fields that matter to the codec said, collected in the one pass that builds the header map.
#[derive(Default)]
struct Scan {
    content_length: Option<u64>,
    /// Transfer-Encoding seen; `chunked_last`: its last coding is `chunked`.
    transfer_encoding: bool,
    chunked_last: bool,
    chunked_twice: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    connection_upgrade: bool,
    upgrade_websocket: bool,
    expect_continue: bool,
    te_trailers: bool,
}

impl Scan {
    fn note(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), ProxyError> {
        if name == header::CONTENT_LENGTH {
            let n = parse_content_length(value.as_bytes())?;
            if self.content_length.is_some_and(|l| l != n) {
                return Err(ProxyError::Malformed("conflicting Content-Length"));
            }
            self.content_length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            let text = value
                .to_str()
                .map_err(|_| ProxyError::Malformed("invalid Transfer-Encoding"))?;
            for coding in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                // `chunked` must be the last coding, applied once: any coding after it, in this field or
                // a later one, leaves the body's end undefined.
                if self.chunked_last {
                    self.chunked_twice |= coding.eq_ignore_ascii_case("chunked");
                }
                self.chunked_last = coding.eq_ignore_ascii_case("chunked");
            }
            self.transfer_encoding = true;
        } else if name == header::CONNECTION {
            for token in tokens(value) {
                if token.eq_ignore_ascii_case("close") {
                    self.connection_close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    self.connection_keep_alive = true;
                } else if token.eq_ignore_ascii_case("upgrade") {
                    self.connection_upgrade = true;
                }
            }
        } else if name == header::UPGRADE {
            self.upgrade_websocket |= tokens(value).any(|t| t.eq_ignore_ascii_case("websocket"));
        } else if name == header::EXPECT {
            self.expect_continue |= value.as_bytes().eq_ignore_ascii_case(b"100-continue");
        } else if name == header::TE {
            self.te_trailers |= tokens(value).any(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case("trailers"))
            });
        }
        Ok(())
    }

    fn framing(&self, version: Version) -> Result<BodyFraming, ProxyError> {
        if self.transfer_encoding {
            if version == Version::HTTP_10 {
                return Err(ProxyError::Malformed("Transfer-Encoding on HTTP/1.0"));
            }
            if self.content_length.is_some() {
                return Err(ProxyError::Malformed(
                    "both Transfer-Encoding and Content-Length",
                ));
            }
            if !self.chunked_last || self.chunked_twice {
                return Err(ProxyError::Malformed(
                    "Transfer-Encoding does not end in chunked",
                ));
            }
            return Ok(BodyFraming::Chunked);
        }
        Ok(match self.content_length {
            None | Some(0) => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        })
    }
}

/// The comma-separated tokens of a field value (none if it is not text).
fn tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A Content-Length value: one decimal number, or a list of equal ones (`5, 5`, which RFC 9110 §8.6 lets a
/// recipient accept). Signs, spaces inside a number, hex and values over `u64` are refused.
fn parse_content_length(value: &[u8]) -> Result<u64, ProxyError> {
    let mut length: Option<u64> = None;
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(ProxyError::Malformed("invalid Content-Length"));
        }
        let n = part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        if length.is_some_and(|l| l != n) {
            return Err(ProxyError::Malformed("conflicting Content-Length"));
        }
        length = Some(n);
    }
    length.ok_or(ProxyError::Malformed("invalid Content-Length"))
}

/// The HTTP/2 connection preface a prior-knowledge (h2c) client opens with (RFC 9113 §3.4).
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say about its protocol.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Preface {
    /// The HTTP/2 preface: hand the connection to the HTTP/2 server.
    Http2,
    /// Could still become the preface: read more.
    Undecided,
    /// Anything else: HTTP/1.
    Http1,
}

/// Classify the first bytes received on a connection.
pub(crate) fn preface(first: &[u8]) -> Preface {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] != H2_PREFACE[..n] {
        Preface::Http1
    } else if n == H2_PREFACE.len() {
        Preface::Http2
    } else {
        Preface::Undecided
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<Head>, ProxyError> {
        parse_head(
            &mut BytesMut::from(text.as_bytes()),
            8192,
            100,
            &mut Vec::new(),
            &mut HeaderMap::new(),
        )
    }

    fn head(text: &str) -> Head {
        parse(text).unwrap().unwrap()
    }

    #[test]
    fn a_simple_head_parses_and_leaves_the_rest() {
        let mut buf =
            BytesMut::from(&b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\nGET /next"[..]);
        let head = parse_head(&mut buf, 8192, 100, &mut Vec::new(), &mut HeaderMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(head.parts.method, Method::GET);
        assert_eq!(head.parts.uri, "/a?b");
        assert_eq!(head.parts.headers["x-a"], "1");
        assert_eq!(head.framing, BodyFraming::None);
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"GET /next");
        let mut partial = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n"[..]);
        assert!(parse_head(
            &mut partial,
            8192,
            100,
            &mut Vec::new(),
            &mut HeaderMap::new()
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn limits_give_431() {
        let mut partial = BytesMut::from(&b"GET / HTTP/1.1\r\nX-Big: aaaaaaaaaaaaaaaa"[..]);
        assert!(matches!(
            parse_head(
                &mut partial,
                20,
                100,
                &mut Vec::new(),
                &mut HeaderMap::new()
            ),
            Err(ProxyError::HeadTooLarge)
        ));
        let mut many = BytesMut::from(&b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"[..]);
        assert!(matches!(
            parse_head(&mut many, 8192, 2, &mut Vec::new(), &mut HeaderMap::new()),
            Err(ProxyError::HeadTooLarge)
        ));
        let mut big_list = BytesMut::from(&b"GET / HTTP/1.1\r\nA: 1\r\n\r\n"[..]);
        assert!(parse_head(
            &mut big_list,
            8192,
            500,
            &mut Vec::new(),
            &mut HeaderMap::new()
        )
        .unwrap()
        .is_some());
    }

    #[test]
    fn framing_and_smuggling_defences() {
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").framing,
            BodyFraming::Length(5)
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n").framing,
            BodyFraming::Length(5)
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing,
            BodyFraming::Chunked
        );
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
            "GET  HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ProxyError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn connection_semantics() {
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        let h = head(
            "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\nTE: trailers\r\n\r\n",
        );
        assert!(h.expect_continue && h.accepts_trailers);
        assert!(!head("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
        let ws = head(
            "GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert!(ws.upgrade);
        assert!(ws.parts.extensions.get::<UpgradeRequest>().is_some());
        assert!(!head("GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n").upgrade);
    }

    #[test]
    fn the_h2_preface_is_recognised_early() {
        assert_eq!(preface(b"PRI * HT"), Preface::Undecided);
        assert_eq!(preface(H2_PREFACE), Preface::Http2);
        assert_eq!(preface(b"GET / HTTP/1.1\r\n"), Preface::Http1);
        assert_eq!(preface(b"P"), Preface::Undecided);
        assert_eq!(preface(b"POST"), Preface::Http1);
    }
}
