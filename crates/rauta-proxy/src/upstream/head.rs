//! The upstream response head: parsing it (httparse) and what it says about the body and the connection.

use std::io;
use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};

use super::body::{Chunk, Framing};

/// Most header fields accepted in an upstream response head (and in a chunked body's trailer section).
pub(super) const MAX_RESPONSE_HEADERS: usize = 128;

/// Where a field's name and value sit in the head: byte offsets (name start, name end, value start, value
/// end). Each pooled connection keeps one vector of these, so a parse allocates and clears nothing for it.
pub(crate) type FieldSpans = Vec<[usize; 4]>;

/// Parse a response head at the start of `buf`; on success remove it from `buf`. `None`: incomplete.
/// 1xx heads are returned too: the caller skips interim ones and decides whether a 101 is expected.
/// `spans` is scratch space.
pub(super) fn parse_head(
    buf: &mut BytesMut,
    max_head: usize,
    spans: &mut FieldSpans,
) -> io::Result<Option<Response<()>>> {
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
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = map;
    Ok(Some(response))
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
        let head = parse_head(&mut buf, 8192, &mut Vec::new())
            .unwrap()
            .unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["x-a"], "b");
        assert_eq!(&buf[..], b"ok");
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX-A: b"[..]);
        assert!(parse_head(&mut partial, 8192, &mut Vec::new())
            .unwrap()
            .is_none());
        assert!(parse_head(&mut partial, 10, &mut Vec::new()).is_err());
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
