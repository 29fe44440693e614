//! The access log: one line per request on stdout, as text (`key=value` pairs) or JSON (one object per line).
//!
//! Fields: `time` (RFC 3339, UTC, milliseconds, when the request head was received), `client` (address and
//! port), `host` (Host header or `:authority`, as received), `method`, `path` (the request target: path and
//! query, undecoded), `status`, `bytes` (response body size when known from its length, else `-`/`null`,
//! e.g. for chunked responses still streaming), `upstream` (endpoint address, `-`/`null` when the proxy
//! answered itself), `upstream_latency` (seconds to the upstream's response head), `latency` (seconds from
//! the request head to the response head) and `tier` (`3`: served by the userspace proxy).
//!
//! The line is written when the response head is ready, one `write` per line, so lines from different
//! worker threads never interleave.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{header, Extensions, Request, Response};
use http_body::Body;

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

/// Write the line of a request whose response head is ready.
pub(crate) fn finish(pending: Option<Pending>, conn: &ConnContext, response: &Response<ProxyBody>) {
    let Some(p) = pending else { return };
    let entry = Entry {
        time: p.time,
        client: conn.peer,
        host: &p.host,
        method: p.method.as_str(),
        target: &p.target,
        status: response.status().as_u16(),
        bytes: response.body().size_hint().exact(),
        upstream: response.extensions().get::<UpstreamLeg>().copied(),
        latency: p.received.elapsed(),
    };
    let line = match conn.proxy.config.access_log {
        AccessLogFormat::Off => return,
        AccessLogFormat::Text => entry.text(),
        AccessLogFormat::Json => entry.json(),
    };
    // A closed or full stdout must not fail the request; the line is lost.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
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
