//! The upstream response head: parsing it (httparse) and what it says about the body and the connection.

use std::io;
use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};

use super::body::{Chunk, Framing};

/// Most header fields accepted in an upstream response head (and in a chunked body's trailer section).
pub(super) const MAX_RESPONSE_HEADERS: usize = 128;

/// Where a field's name and value sit in the head: byte offsets (name start, name end, value start, value
/// end). Each pooled connection keeps one vector of these, so a parse allocates and clears nothing for it.
pub(crate) type FieldSpans = Vec<[usize; 4]>;

/// A response head parsed, in one of two forms (see [`parse_head`]).
pub(super) enum ParsedHead {
    /// Status, version and header fields in a map (the form everything but the HTTP/1 client codec needs).
    Map(Response<()>),
    /// Status and version only (the map is empty); the fields the client gets were copied into the
    /// connection's `fields` buffer, and what the body decoder needs is in `meta`.
    Passed(Response<()>, PassedMeta),
}

impl ParsedHead {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Self::Map(head) | Self::Passed(head, _) => head.status(),
        }
    }
}

/// What a passed-through head's framing fields said, read while its fields were copied.
pub(super) struct PassedMeta {
    pub framing: Framing,
    /// `Connection: close`.
    pub close: bool,
    /// A `Date` field is among the fields passed on (the client codec adds one otherwise).
    pub has_date: bool,
}

/// Parse a response head at the start of `buf`; on success remove it from `buf`. `None`: incomplete.
/// 1xx heads are returned too: the caller skips interim ones and decides whether a 101 is expected.
/// `spans` is scratch space.
///
/// With `pass` (the client is served by RAUTA's own HTTP/1 codec) a final response other than a 101 is not
/// turned into a header map: its fields are copied as received (names in the upstream's case, order and
/// repeats kept) into `pass.fields`, minus the hop-by-hop fields and, unless the response is bodiless
/// (`method` HEAD, 204, 304), Content-Length (the client codec re-frames the body). Building the map cost
/// an allocation, a name lookup and hash per field and a second walk to encode it again.
pub(super) fn parse_head(
    buf: &mut BytesMut,
    max_head: usize,
    spans: &mut FieldSpans,
    pass: Option<(&Method, &mut Vec<u8>)>,
) -> io::Result<Option<ParsedHead>> {
    // Uninitialised slots: httparse fills only what it parses (zeroing 128 slots, 4 KiB, cost more than
    // parsing a typical head).
    let mut slots = [const { MaybeUninit::uninit() }; MAX_RESPONSE_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut slots,
    ) {
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
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    if let Some((method, fields)) = pass {
        if !status.is_informational() {
            // httparse validated every name as a token and every value as field content (obs-fold and
            // control bytes are refused above), which is what the map's constructors check.
            let meta = pass_fields(parsed.headers, method, status, fields)?;
            buf.advance(len);
            return Ok(Some(ParsedHead::Passed(response, meta)));
        }
    }
    // Header values are sliced out of the frozen head (no copy per value); record where they are first,
    // since the parsed slices borrow the buffer.
    let base = buf.as_ptr() as usize;
    spans.clear();
    spans.extend(parsed.headers.iter().map(|h| {
        let name = h.name.as_ptr() as usize - base;
        let value = h.value.as_ptr() as usize - base;
        [name, name + h.name.len(), value, value + h.value.len()]
    }));
    let head = buf.split_to(len).freeze();
    let mut map = HeaderMap::with_capacity(spans.len());
    for &[ns, ne, vs, ve] in spans.iter() {
        let name =
            HeaderName::from_bytes(&head[ns..ne]).map_err(|_| invalid("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
            .map_err(|_| invalid("invalid header value"))?;
        map.append(name, value);
    }
    *response.headers_mut() = map;
    Ok(Some(ParsedHead::Map(response)))
}

/// The fields of a final response head that matter to the proxy, by name (case-insensitive).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentLength,
    TransferEncoding,
    Connection,
    Te,
    Date,
    /// `Keep-Alive`, `Proxy-Connection`, `Upgrade`, `Proxy-Authenticate`, `Proxy-Authorization`: dropped.
    HopByHop,
    Other,
}

fn classify(name: &[u8]) -> Field {
    let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
    // Dispatch on the length first: most fields are none of these, and most lengths match none.
    match name.len() {
        2 if is(b"te") => Field::Te,
        4 if is(b"date") => Field::Date,
        7 if is(b"upgrade") => Field::HopByHop,
        10 if is(b"connection") => Field::Connection,
        10 if is(b"keep-alive") => Field::HopByHop,
        14 if is(b"content-length") => Field::ContentLength,
        16 if is(b"proxy-connection") => Field::HopByHop,
        17 if is(b"transfer-encoding") => Field::TransferEncoding,
        18 if is(b"proxy-authenticate") => Field::HopByHop,
        19 if is(b"proxy-authorization") => Field::HopByHop,
        _ => Field::Other,
    }
}

/// The comma-separated members of a field value, trimmed, empty ones skipped.
fn members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Copy the end-to-end fields of a final response head into `out` and read its framing, with the same
/// rules as [`response_framing`] and `headers::strip_hop_by_hop` apply to a map.
fn pass_fields(
    headers: &[httparse::Header<'_>],
    method: &Method,
    status: StatusCode,
    out: &mut Vec<u8>,
) -> io::Result<PassedMeta> {
    let bodiless = method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // Fields that `Connection` names are hop-by-hop too. They may come after it, so they are collected
    // first (only when `Connection` names any: rare; `keep-alive` and `close` are options, not names).
    let mut named: Vec<&[u8]> = Vec::new();
    let mut close = false;
    for h in headers {
        if h.name.len() == 10 && h.name.eq_ignore_ascii_case("connection") {
            for token in members(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive")
                    && !token.eq_ignore_ascii_case(b"host")
                {
                    named.push(token);
                }
            }
        }
    }
    out.clear();
    let mut has_date = false;
    let mut te_trailers = false;
    let mut transfer_encoding: Option<bool> = None;
    let mut length: Result<Option<u64>, &'static str> = Ok(None);
    for h in headers {
        let name = h.name.as_bytes();
        let field = classify(name);
        let keep = match field {
            Field::Other => true,
            Field::Date => {
                has_date = true;
                true
            }
            Field::ContentLength => {
                if let Ok(known) = length {
                    length = content_length(h.value, known);
                }
                bodiless
            }
            Field::TransferEncoding => {
                // Only the last coding of the last field decides (as for a map).
                if let Some(last) = members(h.value).last() {
                    transfer_encoding = Some(last.eq_ignore_ascii_case(b"chunked"));
                } else if transfer_encoding.is_none() {
                    transfer_encoding = Some(false);
                }
                false
            }
            Field::Te => {
                te_trailers |= members(h.value).any(|t| {
                    t.split(|&b| b == b';')
                        .next()
                        .is_some_and(|n| n.trim_ascii().eq_ignore_ascii_case(b"trailers"))
                });
                false
            }
            Field::Connection | Field::HopByHop => false,
        };
        if keep && (named.is_empty() || !named.iter().any(|n| n.eq_ignore_ascii_case(name))) {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        } else if field == Field::Date {
            // A Date that `Connection` named is dropped: the client codec then adds its own.
            has_date = false;
        }
    }
    if te_trailers && !named.iter().any(|n| n.eq_ignore_ascii_case(b"te")) {
        out.extend_from_slice(b"te: trailers\r\n");
    }
    let framing = if bodiless {
        Framing::Done
    } else if let Some(chunked) = transfer_encoding {
        if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Close
        }
    } else {
        match length.map_err(invalid)? {
            Some(0) => Framing::Done,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    Ok(PassedMeta {
        framing,
        close,
        has_date,
    })
}

/// Fold one Content-Length field into the length known so far: each comma-separated member must be a
/// decimal number, and all must agree.
fn content_length(value: &[u8], mut known: Option<u64>) -> Result<Option<u64>, &'static str> {
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err("invalid Content-Length");
        }
        let n = part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        if known.is_some_and(|l| l != n) {
            return Err("conflicting Content-Length");
        }
        known = Some(n);
    }
    Ok(known)
}

pub(super) fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

pub(super) fn invalid_owned(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Whether any `Connection` field lists `token`.
pub(super) fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// How the response body is delimited (RFC 9112 §6.3).
pub(super) fn response_framing(method: &Method, head: &Response<()>) -> io::Result<Framing> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_skip_nothing_and_limit_size() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok"[..]);
        let Some(ParsedHead::Map(head)) =
            parse_head(&mut buf, 8192, &mut Vec::new(), None).unwrap()
        else {
            panic!("a complete head parses into a map");
        };
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["x-a"], "b");
        assert_eq!(&buf[..], b"ok");
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX-A: b"[..]);
        assert!(parse_head(&mut partial, 8192, &mut Vec::new(), None)
            .unwrap()
            .is_none());
        assert!(parse_head(&mut partial, 10, &mut Vec::new(), None).is_err());
    }

    /// Parse `text` in pass-through mode: the fields the client gets, and what the decoder was told.
    fn passed(method: &Method, text: &str) -> io::Result<(String, PassedMeta)> {
        let mut buf = BytesMut::from(text.as_bytes());
        let mut fields = Vec::new();
        match parse_head(&mut buf, 8192, &mut Vec::new(), Some((method, &mut fields)))? {
            Some(ParsedHead::Passed(head, meta)) => {
                assert!(head.headers().is_empty());
                Ok((String::from_utf8(fields).unwrap(), meta))
            }
            _ => panic!("not passed through: {text:?}"),
        }
    }

    #[test]
    fn passed_heads_keep_order_case_and_repeats_and_drop_hop_by_hop_fields() {
        let (fields, meta) = passed(
            &Method::GET,
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
             Keep-Alive: timeout=5\r\nContent-Length: 2\r\nProxy-Connection: x\r\nUpgrade: h2c\r\n\
             Set-Cookie: b=2\r\nDate: x\r\nTE: trailers\r\nTrailer: X-Sum\r\n\r\nok",
        )
        .unwrap();
        assert_eq!(
            fields,
            "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nDate: x\r\nTrailer: X-Sum\r\nte: trailers\r\n"
        );
        assert!(matches!(meta.framing, Framing::Length(2)));
        assert!(meta.has_date && !meta.close);
    }

    #[test]
    fn passed_heads_frame_like_mapped_ones() {
        let framing = |method: &Method, text: &str| passed(method, text).map(|(_, m)| m.framing);
        // A bodiless answer keeps its Content-Length (it describes the resource), and nothing is read.
        let (fields, meta) = passed(
            &Method::HEAD,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        assert_eq!(fields, "Content-Length: 5\r\n");
        assert!(matches!(meta.framing, Framing::Done));
        assert!(matches!(
            framing(
                &Method::GET,
                "HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n"
            ),
            Ok(Framing::Done)
        ));
        assert!(matches!(
            framing(&Method::GET, "HTTP/1.1 204 No Content\r\n\r\n"),
            Ok(Framing::Done)
        ));
        assert!(matches!(
            framing(
                &Method::GET,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n"
            ),
            Ok(Framing::Chunked(Chunk::Size))
        ));
        assert!(matches!(
            framing(
                &Method::GET,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
            ),
            Ok(Framing::Close)
        ));
        assert!(matches!(
            framing(&Method::GET, "HTTP/1.1 200 OK\r\n\r\n"),
            Ok(Framing::Close)
        ));
        assert!(matches!(
            framing(&Method::GET, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Ok(Framing::Done)
        ));
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        ] {
            assert!(framing(&Method::GET, bad).is_err(), "{bad:?}");
        }
        let (_, meta) = passed(
            &Method::GET,
            "HTTP/1.1 200 OK\r\nconnection: Close\r\nContent-Length: 1\r\n\r\n",
        )
        .unwrap();
        assert!(meta.close && !meta.has_date);
    }

    #[test]
    fn interim_and_invalid_heads_are_not_passed() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\n\r\n"[..]);
        let mut fields = Vec::new();
        let head = parse_head(
            &mut buf,
            8192,
            &mut Vec::new(),
            Some((&Method::GET, &mut fields)),
        );
        assert!(matches!(head, Ok(Some(ParsedHead::Map(h))) if h.headers()["upgrade"] == "ws"));
        for bad in [
            "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(bad.as_bytes());
            let parsed = parse_head(
                &mut buf,
                8192,
                &mut Vec::new(),
                Some((&Method::GET, &mut fields)),
            );
            assert!(parsed.is_err(), "{bad:?}");
        }
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
