//! The response head sent to an HTTP/1.x client, and how its body is framed.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header;
use http::response::Parts;
use http::{StatusCode, Version};
use http_body::SizeHint;

use crate::upstream::PassedFields;

/// How the response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body may follow (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length`: exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1 clients, length unknown).
    Chunked,
    /// Until the connection closes (HTTP/1.0 clients, length unknown).
    Close,
}

/// What the request said that shapes the response.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestInfo {
    pub is_head: bool,
    pub version: Version,
}

/// Write the response head into `out` and return the body framing. `close`: the connection closes after this
/// response (it says so with `Connection: close`; a close-delimited body forces it).
///
/// The body length comes from the body itself (`hint`), never from a `Content-Length` field passed along:
/// an upstream's chunked body with a stray Content-Length must not reach the client with that length. Only
/// bodiless responses (HEAD, 204, 304) keep the field as received, since there it describes the resource.
///
/// `passed`: the upstream's own fields as bytes (already without hop-by-hop fields and, unless bodiless,
/// Content-Length), written after whatever `parts.headers` holds.
pub(super) fn encode_head(
    out: &mut Vec<u8>,
    parts: &Parts,
    passed: Option<&PassedFields>,
    hint: &SizeHint,
    req: RequestInfo,
    close: &mut bool,
) -> Framing {
    let status = parts.status;
    let bodiless = req.is_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodiless {
        Framing::None
    } else if let Some(n) = hint.exact() {
        Framing::Length(n)
    } else if req.version == Version::HTTP_11 {
        Framing::Chunked
    } else {
        Framing::Close
    };
    *close |= framing == Framing::Close;

    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if !bodiless && name == header::CONTENT_LENGTH {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(passed) = passed {
        out.extend_from_slice(&passed.bytes);
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::None | Framing::Close => {}
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        if *close {
            out.extend_from_slice(b"connection: close\r\n");
        } else if req.version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    if !passed.is_some_and(|p| p.has_date) && !parts.headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        push_date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// Append `n` in decimal.
pub(super) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Append `n` in lowercase hexadecimal (a chunk size).
pub(super) fn push_hex(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

thread_local! {
    /// The current second's `Date` value, formatted once per second per thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Append the current time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7).
fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != now {
            *cached = (now, imf_fixdate(now));
        }
        out.extend_from_slice(&cached.1);
    });
}

/// Format seconds since the Unix epoch as an IMF-fixdate (proleptic Gregorian calendar, UTC).
fn imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, min, sec) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm, non-negative input).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);

    let mut out = [0u8; 29];
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&two(day));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    out[12..14].copy_from_slice(&two(year / 100));
    out[14..16].copy_from_slice(&two(year));
    out[16] = b' ';
    out[17..19].copy_from_slice(&two(hour));
    out[19] = b':';
    out[20..22].copy_from_slice(&two(min));
    out[22] = b':';
    out[23..25].copy_from_slice(&two(sec));
    out[25..].copy_from_slice(b" GMT");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    fn encode(
        status: u16,
        headers: &[(&str, &str)],
        hint: SizeHint,
        is_head: bool,
        version: Version,
        mut close: bool,
    ) -> (String, Framing, bool) {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (parts, ()) = b.body(()).unwrap().into_parts();
        let mut out = Vec::new();
        let info = RequestInfo { is_head, version };
        let framing = encode_head(&mut out, &parts, None, &hint, info, &mut close);
        (String::from_utf8(out).unwrap(), framing, close)
    }

    #[test]
    fn the_length_comes_from_the_body_not_a_passed_field() {
        let (text, framing, close) = encode(
            200,
            &[("content-length", "99"), ("date", "x")],
            SizeHint::with_exact(3),
            false,
            Version::HTTP_11,
            false,
        );
        assert_eq!(framing, Framing::Length(3));
        assert!(!close);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ndate: x\r\ncontent-length: 3\r\n\r\n"
        );
        let (text, framing, _) = encode(
            200,
            &[("content-length", "99"), ("date", "x")],
            SizeHint::default(),
            false,
            Version::HTTP_11,
            false,
        );
        assert_eq!(framing, Framing::Chunked);
        assert!(!text.contains("99") && text.contains("transfer-encoding: chunked\r\n"));
    }

    #[test]
    fn bodiless_responses_keep_their_length_field() {
        let (text, framing, _) = encode(
            200,
            &[("content-length", "42"), ("date", "x")],
            SizeHint::with_exact(0),
            true,
            Version::HTTP_11,
            false,
        );
        assert_eq!(framing, Framing::None);
        assert!(text.contains("content-length: 42\r\n"));
        let (_, framing, _) = encode(
            304,
            &[],
            SizeHint::default(),
            false,
            Version::HTTP_11,
            false,
        );
        assert_eq!(framing, Framing::None);
    }

    #[test]
    fn http_1_0_clients_get_keep_alive_or_a_close_delimited_body() {
        let (text, _, _) = encode(
            200,
            &[("date", "x")],
            SizeHint::with_exact(0),
            false,
            Version::HTTP_10,
            false,
        );
        assert!(text.contains("connection: keep-alive\r\n"));
        let (text, framing, close) = encode(
            200,
            &[("date", "x")],
            SizeHint::default(),
            false,
            Version::HTTP_10,
            false,
        );
        assert_eq!(framing, Framing::Close);
        assert!(close && text.contains("connection: close\r\n"));
    }

    #[test]
    fn a_date_is_added_when_missing() {
        let (text, _, _) = encode(
            404,
            &[],
            SizeHint::with_exact(0),
            false,
            Version::HTTP_11,
            false,
        );
        assert!(
            text.contains("date: ") && text.contains(" GMT\r\n"),
            "{text}"
        );
    }

    #[test]
    fn dates_and_numbers_format() {
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        let mut out = Vec::new();
        push_decimal(&mut out, 0);
        push_decimal(&mut out, 1_234_567);
        push_hex(&mut out, 0);
        push_hex(&mut out, 0x1a2b);
        assert_eq!(
            out,
            b"012345670"
                .iter()
                .chain(b"1a2b")
                .copied()
                .collect::<Vec<u8>>()
        );
    }
}
