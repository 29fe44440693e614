//! Header rewriting between client and upstream: hop-by-hop removal and `X-Forwarded-*`.
//!
//! `Trailer` is deliberately kept (both directions): RFC 9110 §6.6.2 makes it an end-to-end field, and hyper
//! only encodes trailer fields that the message's `Trailer` header announces, so dropping it would drop the
//! trailers themselves.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::listener::Scheme;

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Fixed hop-by-hop fields (RFC 9110 §7.6.1 plus the de-facto `Keep-Alive` and `Proxy-Connection`), as a
/// bit each, so one scan over the map finds which are present. `TE` is handled separately because
/// `TE: trailers` is forwarded. `Expect` has a bit too, but only requests lose it (see
/// [`strip_request_hop_by_hop`]).
fn hop_by_hop_bit(name: &HeaderName) -> u16 {
    if name == header::CONNECTION {
        CONNECTION
    } else if name == header::TRANSFER_ENCODING {
        1 << 1
    } else if name == header::UPGRADE {
        1 << 2
    } else if name == header::PROXY_AUTHENTICATE {
        1 << 3
    } else if name == header::PROXY_AUTHORIZATION {
        1 << 4
    } else if name == header::TE {
        TE
    } else if name == KEEP_ALIVE {
        1 << 6
    } else if name == PROXY_CONNECTION {
        1 << 7
    } else if name == header::EXPECT {
        EXPECT
    } else {
        0
    }
}

const CONNECTION: u16 = 1;
const TE: u16 = 1 << 5;
const EXPECT: u16 = 1 << 8;

/// Remove hop-by-hop fields: the fixed list and every field the `Connection` header names. `TE` survives as
/// `TE: trailers` when it lists `trailers` (the only value meaningful end to end). `Host` is never removed,
/// even if `Connection` names it: the upstream must see the Host the client sent.
///
/// Runs on every request and response, so it scans the map once and removes only what is there: most
/// messages carry none of these fields, and most others only `Connection: keep-alive`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, !EXPECT);
}

/// [`strip_hop_by_hop`] for a request going upstream, which also loses `Expect`: the proxy answers
/// `Expect: 100-continue` itself (see `forward`). Found in the same scan over the names: a separate
/// `remove` costs a hash and a probe per request even though the field is almost never there.
pub(crate) fn strip_request_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, u16::MAX);
}

/// Remove the hop-by-hop fields whose bits are in `kinds`.
fn strip(headers: &mut HeaderMap, kinds: u16) {
    let present = kinds
        & headers
            .keys()
            .fold(0u16, |bits, name| bits | hop_by_hop_bit(name));
    if present == 0 {
        return;
    }
    if present & CONNECTION != 0 {
        // `keep-alive` and `close` are connection options, not field names to look up (and `Keep-Alive`
        // is removed anyway); collecting nothing does not allocate.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .filter(|name| name != header::HOST)
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    if present & TE != 0 {
        let te_trailers = headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| {
                // A TE member may carry parameters (`trailers;q=1` is not valid, but be lenient).
                t.split(';')
                    .next()
                    .is_some_and(|name| name.trim().eq_ignore_ascii_case("trailers"))
            });
        headers.remove(header::TE);
        if te_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
    for (bit, name) in [
        (CONNECTION, &header::CONNECTION),
        (1 << 1, &header::TRANSFER_ENCODING),
        (1 << 2, &header::UPGRADE),
        (1 << 3, &header::PROXY_AUTHENTICATE),
        (1 << 4, &header::PROXY_AUTHORIZATION),
        (1 << 6, &KEEP_ALIVE),
        (1 << 7, &PROXY_CONNECTION),
        (EXPECT, &header::EXPECT),
    ] {
        // A field named by `Connection` may have been one of these and be gone already: remove is a no-op.
        if present & bit != 0 {
            headers.remove(name);
        }
    }
}

/// Add the forwarding headers to a request going upstream.
///
/// - `X-Forwarded-For`: the client IP appended to any values already present (joined into one field).
/// - `X-Real-IP`: the client IP, replacing any value sent by the client.
/// - `X-Forwarded-Proto`: the scheme the client used, replacing any value sent.
/// - `X-Forwarded-Host`: the original Host, replacing any value sent; removed when there is no Host.
pub(crate) fn add_forwarded(headers: &mut HeaderMap, client_ip: &HeaderValue, scheme: Scheme) {
    let xff = match headers.get(&X_FORWARDED_FOR) {
        None => client_ip.clone(),
        Some(_) => {
            let mut joined = Vec::with_capacity(64);
            for value in headers.get_all(&X_FORWARDED_FOR) {
                joined.extend_from_slice(value.as_bytes());
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(client_ip.as_bytes());
            // Existing values were valid header values and the IP is ASCII, so this cannot fail; fall back to
            // the bare IP rather than panic if it somehow does.
            HeaderValue::from_bytes(&joined).unwrap_or_else(|_| client_ip.clone())
        }
    };
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    headers.insert(X_REAL_IP.clone(), client_ip.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), scheme.header_value());
    match headers.get(header::HOST).cloned() {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// The forwarding fields of a request to an HTTP/1.1 upstream: written by the upstream codec straight into
/// the request head (see `upstream::encode_head`), with the same values [`add_forwarded`] gives a map,
/// instead of four map insertions (each a hash, a probe and a value copy) per request.
#[derive(Debug)]
pub(crate) struct Forwarding<'a> {
    pub(crate) client_ip: &'a HeaderValue,
    pub(crate) scheme: Scheme,
    /// The `X-Forwarded-For` values the client sent, joined with `, ` (`None`: it sent none).
    pub(crate) prior_for: Option<Vec<u8>>,
}

impl<'a> Forwarding<'a> {
    /// Take the client's own forwarding fields out of `headers` (the prior `X-Forwarded-For` values are
    /// kept to be appended to; `X-Real-IP`, `X-Forwarded-Proto` and `X-Forwarded-Host` are replaced).
    pub(crate) fn take(
        headers: &mut HeaderMap,
        client_ip: &'a HeaderValue,
        scheme: Scheme,
    ) -> Self {
        // One pass over the names finds whether there is anything to take (usually not): each `remove`
        // costs a hash and a probe even for an absent name.
        let present = headers.keys().any(|name| {
            name == X_FORWARDED_FOR
                || name == X_REAL_IP
                || name == X_FORWARDED_PROTO
                || name == X_FORWARDED_HOST
        });
        let mut prior_for = None;
        if present {
            let mut joined: Option<Vec<u8>> = None;
            for value in headers.get_all(&X_FORWARDED_FOR) {
                let joined = joined.get_or_insert_with(|| Vec::with_capacity(64));
                if !joined.is_empty() {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(value.as_bytes());
            }
            prior_for = joined;
            for name in [
                &X_FORWARDED_FOR,
                &X_REAL_IP,
                &X_FORWARDED_PROTO,
                &X_FORWARDED_HOST,
            ] {
                headers.remove(name);
            }
        }
        Self {
            client_ip,
            scheme,
            prior_for,
        }
    }

    /// Append the four fields to a request head being encoded; `host`: the request's Host value.
    pub(crate) fn encode(&self, host: Option<&HeaderValue>, out: &mut Vec<u8>) {
        let ip = self.client_ip.as_bytes();
        out.extend_from_slice(b"x-forwarded-for: ");
        if let Some(prior) = &self.prior_for {
            out.extend_from_slice(prior);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(ip);
        out.extend_from_slice(b"\r\nx-real-ip: ");
        out.extend_from_slice(ip);
        out.extend_from_slice(b"\r\nx-forwarded-proto: ");
        out.extend_from_slice(self.scheme.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(host) = host {
            out.extend_from_slice(b"x-forwarded-host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The client IP as a header value, computed once per connection.
pub(crate) fn ip_header_value(ip: std::net::IpAddr) -> HeaderValue {
    // An IP address renders as ASCII digits, dots, colons and hex letters: always a valid header value.
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn strips_fixed_and_connection_named_fields_but_keeps_host_and_te_trailers() {
        let mut h = map(&[
            ("host", "a.example"),
            ("connection", "keep-alive, X-Secret, host"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "gzip, trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("trailer", "x-checksum"),
            ("x-keep", "yes"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        assert_eq!(names, ["host", "te", "trailer", "x-keep"]);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn connection_options_are_not_taken_for_field_names() {
        // The common upstream answer: only `Connection: keep-alive` goes; a field that happens to be
        // called like an option is only removed when Connection names it as a field.
        let mut h = map(&[
            ("connection", "Keep-Alive, close"),
            ("content-length", "3"),
            ("x-other", "1"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        assert_eq!(names, ["content-length", "x-other"]);
    }

    #[test]
    fn only_requests_lose_expect() {
        let fields = [("expect", "100-continue"), ("x-other", "1")];
        let mut request = map(&fields);
        strip_request_hop_by_hop(&mut request);
        let names: Vec<_> = request.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names, ["x-other"]);
        let mut response = map(&fields);
        strip_hop_by_hop(&mut response);
        assert_eq!(response.len(), 2);
        // The request variant strips everything the response one does.
        let mut request = map(&[("connection", "x-a"), ("x-a", "1"), ("te", "trailers")]);
        strip_request_hop_by_hop(&mut request);
        let names: Vec<_> = request.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names, ["te"]);
    }

    #[test]
    fn te_without_trailers_is_removed() {
        let mut h = map(&[("te", "gzip")]);
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn forwarded_headers_append_and_replace() {
        let mut h = map(&[
            ("host", "a.example:8080"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2, 10.0.0.3"),
            ("x-real-ip", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        add_forwarded(&mut h, &HeaderValue::from_static("127.0.0.9"), Scheme::Http);
        assert_eq!(
            h["x-forwarded-for"],
            "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.9"
        );
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-real-ip"], "127.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "a.example:8080");
    }

    #[test]
    fn forwarding_written_into_the_head_matches_the_map_form() {
        let pairs = [
            ("host", "a.example:8080"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2, 10.0.0.3"),
            ("x-real-ip", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-other", "1"),
        ];
        let ip = HeaderValue::from_static("127.0.0.9");
        let mut mapped = map(&pairs);
        add_forwarded(&mut mapped, &ip, Scheme::Http);
        let mut taken = map(&pairs);
        let forwarding = Forwarding::take(&mut taken, &ip, Scheme::Http);
        let mut names: Vec<_> = taken.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        assert_eq!(names, ["host", "x-other"]);
        let mut out = Vec::new();
        forwarding.encode(taken.get(header::HOST), &mut out);
        let mut expected = Vec::new();
        for name in [
            "x-forwarded-for",
            "x-real-ip",
            "x-forwarded-proto",
            "x-forwarded-host",
        ] {
            expected.extend_from_slice(format!("{name}: ").as_bytes());
            expected.extend_from_slice(mapped[name].as_bytes());
            expected.extend_from_slice(b"\r\n");
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(expected).unwrap()
        );

        // Nothing to take: nothing removed, only the client's address; no Host, no X-Forwarded-Host.
        let mut plain = map(&[("x-other", "1")]);
        let forwarding = Forwarding::take(&mut plain, &ip, Scheme::Https);
        assert_eq!(plain.len(), 1);
        let mut out = Vec::new();
        forwarding.encode(None, &mut out);
        assert_eq!(
            out,
            b"x-forwarded-for: 127.0.0.9\r\nx-real-ip: 127.0.0.9\r\nx-forwarded-proto: https\r\n"
        );
    }

    #[test]
    fn ipv6_client_ip_renders() {
        assert_eq!(ip_header_value("::1".parse().unwrap()), "::1");
    }
}
