//! The access log: one line per request on stdout, as text (`key=value` pairs) or JSON (one object per line).
//!
//! Fields: `time` (RFC 3339, UTC, milliseconds, when the request head was received), `client` (address and
//! port), `host` (Host header or `:authority`, as received), `method`, `path` (the request target: path and
//! query, undecoded), `status`, `bytes` (response body bytes sent to the client), `upstream` (endpoint address, `-`/`null` when the proxy
//! answered itself), `upstream_latency` (seconds to the upstream's response head), `latency` (seconds from
//! the request head to the response head) and `tier` (`3`: served by the userspace proxy).
//!
//! The line is written when the response head is ready if the body's length is known then (Content-Length,
//! error texts); otherwise (chunked, read-to-close, HTTP/2 without length, gRPC) the body is counted as it
//! streams and the line is written when it ends, or with the bytes sent so far when it is dropped before its
//! end (client gone, upstream failure). One `write` per line, so lines from different worker threads never
//! interleave.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, Extensions, Request, Response};
use http_body::{Body, Frame, SizeHint};

use crate::body::ProxyBody;
use crate::server::ConnContext;

/// The tier every request logged here was served by.
const TIER: u8 = 3;

/// Whether and how requests are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// No access log.
    #[default]
    Off,
    /// `key=value` pairs; strings are quoted when they contain spaces, quotes or control characters.
    Text,
    /// One JSON object per line.
    Json,
}

/// What is known about a request when it arrives; completed by [`finish`].
#[derive(Debug)]
pub(crate) struct Pending {
    received: Instant,
    time: SystemTime,
    method: http::Method,
    host: String,
    target: String,
}

/// The upstream leg of a proxied response, carried to [`finish`] in the response's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamLeg {
    addr: SocketAddr,
    latency: Duration,
}

/// Start the entry of a request, or `None` when the access log is off (then nothing is copied).
pub(crate) fn start<B>(conn: &ConnContext, req: &Request<B>) -> Option<Pending> {
    if conn.proxy.config.access_log == AccessLogFormat::Off {
        return None;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_owned();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().to_string(), |p| p.as_str().to_owned());
    Some(Pending {
        received: Instant::now(),
        time: SystemTime::now(),
        method: req.method().clone(),
        host,
        target,
    })
}

/// Remember which endpoint answered and how fast, for the access log (nothing when it is off).
pub(crate) fn note_upstream(
    conn: &ConnContext,
    extensions: &mut Extensions,
    addr: SocketAddr,
    latency: Duration,
) {
    if conn.proxy.config.access_log != AccessLogFormat::Off {
        extensions.insert(UpstreamLeg { addr, latency });
    }
}

/// The response head is ready: write the request's line now if the body's length is known, else hand the
/// line to the body, which writes it with the bytes it counted once it ends (see the module doc).
pub(crate) fn finish(
    pending: Option<Pending>,
    conn: &ConnContext,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let Some(p) = pending else { return response };
    let format = conn.proxy.config.access_log;
    let line = Line {
        pending: p,
        format,
        client: conn.peer,
        status: response.status().as_u16(),
        upstream: response.extensions().get::<UpstreamLeg>().copied(),
        head_latency: None,
    };
    let exact = response.body().size_hint().exact();
    // A 101's body is the upgraded connection, not counted here (and must stay unwrapped for the upgrade).
    let upgrade = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    match exact {
        Some(bytes) => {
            line.write(bytes);
            response
        }
        None if upgrade => {
            line.write(0);
            response
        }
        None => {
            let mut line = line;
            line.head_latency = Some(line.pending.received.elapsed());
            response.map(|body| {
                ProxyBody::counted(CountedBody {
                    inner: body,
                    line: Some(line),
                    bytes: 0,
                })
            })
        }
    }
}

/// A line waiting for its `bytes` field.
#[derive(Debug)]
struct Line {
    pending: Pending,
    format: AccessLogFormat,
    client: SocketAddr,
    status: u16,
    upstream: Option<UpstreamLeg>,
    /// Request head to response head, measured at [`finish`] when the line is deferred (so that `latency`
    /// means the same for every line); `None`: the line is written at once, now is the response head.
    head_latency: Option<Duration>,
}

impl Line {
    fn write(self, bytes: u64) {
        let latency = self
            .head_latency
            .unwrap_or_else(|| self.pending.received.elapsed());
        let p = &self.pending;
        let entry = Entry {
            time: p.time,
            client: self.client,
            host: &p.host,
            method: p.method.as_str(),
            target: &p.target,
            status: self.status,
            bytes: Some(bytes),
            upstream: self.upstream,
            latency,
        };
        let line = match self.format {
            AccessLogFormat::Off => return,
            AccessLogFormat::Text => entry.text(),
            AccessLogFormat::Json => entry.json(),
        };
        // A closed or full stdout must not fail the request; the line is lost.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// A response body of unknown length, counted as it streams; its access-log line is written when it ends,
/// or when it is dropped before (with the bytes passed on until then).
#[derive(Debug)]
pub(crate) struct CountedBody {
    inner: ProxyBody,
    /// `None` once written.
    line: Option<Line>,
    bytes: u64,
}

impl CountedBody {
    /// Whether the counted body comes from an upstream.
    pub(crate) fn is_upstream(&self) -> bool {
        self.inner.is_upstream()
    }

    /// The counted body's passed-through head fields (see `ProxyBody::passed`).
    pub(crate) fn passed(&self) -> Option<&crate::upstream::PassedFields> {
        self.inner.passed()
    }
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        // Every field is Unpin.
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            // The end (or a failure, which ends the response too): the count is final.
            Poll::Ready(None | Some(Err(_))) => {
                if let Some(line) = this.line.take() {
                    line.write(this.bytes);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        // A codec may stop polling once `is_end_stream` says so, without the final `None`.
        if let Some(line) = self.line.take() {
            line.write(self.bytes);
        }
    }
}

/// One complete line's fields.
struct Entry<'a> {
    time: SystemTime,
    client: SocketAddr,
    host: &'a str,
    method: &'a str,
    target: &'a str,
    status: u16,
    bytes: Option<u64>,
    upstream: Option<UpstreamLeg>,
    latency: Duration,
}

impl Entry<'_> {
    fn text(&self) -> String {
        let mut out = String::with_capacity(256);
        let _ = write!(
            out,
            "time={} client={} host={} method={} path={} status={} bytes={} upstream={} upstream_latency={} latency={:.6} tier={TIER}",
            rfc3339(self.time),
            self.client,
            text_value(self.host),
            text_value(self.method),
            text_value(self.target),
            self.status,
            self.bytes.map_or_else(|| "-".to_owned(), |b| b.to_string()),
            self.upstream.map_or_else(|| "-".to_owned(), |u| u.addr.to_string()),
            self.upstream.map_or_else(|| "-".to_owned(), |u| format!("{:.6}", u.latency.as_secs_f64())),
            self.latency.as_secs_f64(),
        );
        out.push('\n');
        out
    }

    fn json(&self) -> String {
        let mut out = String::with_capacity(256);
        let _ = write!(
            out,
            "{{\"time\":\"{}\",\"client\":\"{}\",\"host\":{},\"method\":{},\"path\":{},\"status\":{},\"bytes\":{},\"upstream\":{},\"upstream_latency\":{},\"latency\":{:.6},\"tier\":{TIER}}}",
            rfc3339(self.time),
            self.client,
            json_string(self.host),
            json_string(self.method),
            json_string(self.target),
            self.status,
            self.bytes.map_or_else(|| "null".to_owned(), |b| b.to_string()),
            self.upstream.map_or_else(|| "null".to_owned(), |u| format!("\"{}\"", u.addr)),
            self.upstream.map_or_else(|| "null".to_owned(), |u| format!("{:.6}", u.latency.as_secs_f64())),
            self.latency.as_secs_f64(),
        );
        out.push('\n');
        out
    }
}

/// A text value as is when it is a plain token, else quoted with `"` and `\` escaped and control characters
/// as `\xNN`, so that a client cannot forge fields or lines.
fn text_value(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON string literal.
fn json_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `2024-01-02T03:04:05.678Z`.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_704_164_645_678);
        assert_eq!(rfc3339(t), "2024-01-02T03:04:05.678Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    fn entry<'a>(host: &'a str, target: &'a str) -> Entry<'a> {
        Entry {
            time: UNIX_EPOCH,
            client: "127.0.0.1:5000".parse().unwrap(),
            host,
            method: "GET",
            target,
            status: 200,
            bytes: Some(12),
            upstream: Some(UpstreamLeg {
                addr: "127.0.0.2:80".parse().unwrap(),
                latency: Duration::from_micros(1500),
            }),
            latency: Duration::from_micros(2000),
        }
    }

    #[test]
    fn text_lines_cannot_be_forged() {
        let line = entry("h.example", "/a b\"\n").text();
        assert_eq!(
            line,
            "time=1970-01-01T00:00:00.000Z client=127.0.0.1:5000 host=h.example method=GET path=\"/a b\\\"\\x0a\" status=200 bytes=12 upstream=127.0.0.2:80 upstream_latency=0.001500 latency=0.002000 tier=3\n"
        );
    }

    #[test]
    fn json_lines_parse() {
        let line = entry("h\"x", "/p?q=\u{1}").json();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["host"], "h\"x");
        assert_eq!(v["path"], "/p?q=\u{1}");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 12);
        assert_eq!(v["upstream"], "127.0.0.2:80");
        assert_eq!(v["upstream_latency"], 0.0015);
        assert_eq!(v["tier"], 3);
        let mut none = entry("h", "/");
        none.upstream = None;
        none.bytes = None;
        let v: serde_json::Value = serde_json::from_str(&none.json()).unwrap();
        assert!(v["upstream"].is_null() && v["bytes"].is_null() && v["upstream_latency"].is_null());
    }
}
