//! HTTP/1.1 client to HTTP/1.1 upstream: the response head's fields pass through as the upstream's bytes
//! (no header map in between), so these check, on the wire in both directions, what that copy must drop,
//! keep and add: hop-by-hop fields (also those `Connection` names), repeats and their order, the case of
//! field names (passed as the upstream wrote them), forwarding fields, and the framing of bodiless and
//! chunked answers.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A raw backend: for every request head it receives (requests without bodies), it reports the head's text
/// and writes `answer(path)` as is, keeping the connection open.
async fn recording_backend(
    answer: fn(&str) -> Vec<u8>,
) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (heads, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let end = loop {
                        if let Some(pos) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            break pos + 4;
                        }
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                    pending.drain(..end);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    let _ = heads.send(head);
                    if tcp.write_all(&answer(&path)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn answers(path: &str) -> Vec<u8> {
    let text: &str = match path {
        "/cookies" => {
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Upstream-Case: Kept\r\nConnection: keep-alive, X-Hop\r\n\
             X-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nSet-Cookie: b=2\r\n\
             Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\n\r\nok"
        }
        "/head" => "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nX-Head: 1\r\n\r\n",
        "/no-content" => "HTTP/1.1 204 No Content\r\nX-Empty: 1\r\n\r\n",
        "/not-modified" => "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 42\r\n\r\n",
        "/chunked" => {
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\nTrailer: X-Sum\r\n\r\n\
             5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        }
        "/folded" => "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok",
        "/control" => "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok",
        _ => "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes",
    };
    text.as_bytes().to_vec()
}

/// Read what arrives next on `tcp` into `data`.
async fn read_more(tcp: &mut TcpStream, data: &mut Vec<u8>) {
    let mut buf = [0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("response within 5 s")
        .unwrap();
    assert!(
        n > 0,
        "connection closed early: {:?}",
        String::from_utf8_lossy(data)
    );
    data.extend_from_slice(&buf[..n]);
}

/// Send `request` on `tcp` and read one response: its head and, framed as the head says, its body
/// (`bodiless`: the request was HEAD or the status forbids a body).
async fn exchange(tcp: &mut TcpStream, request: &str, bodiless: bool) -> (String, String) {
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut data = Vec::new();
    let end = loop {
        if let Some(pos) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        read_more(tcp, &mut data).await;
    };
    let head = String::from_utf8(data[..end].to_vec()).unwrap();
    let lower = head.to_ascii_lowercase();
    let body_done = |body: &[u8]| -> bool {
        if bodiless {
            return true;
        }
        if let Some(len) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
        {
            return body.len() >= len.trim().parse::<usize>().unwrap();
        }
        assert!(lower.contains("transfer-encoding: chunked\r\n"), "{head}");
        body.ends_with(b"0\r\n\r\n")
    };
    while !body_done(&data[end..]) {
        read_more(tcp, &mut data).await;
    }
    let body = String::from_utf8(data[end..].to_vec()).unwrap();
    (head, body)
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {APP_HOST}\r\n{extra}\r\n")
}

/// The field lines of a head (status line and the blank line left out).
fn fields(head: &str) -> Vec<&str> {
    head.split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .collect()
}

#[tokio::test]
async fn response_fields_pass_in_order_with_their_case_and_without_hop_by_hop_fields() {
    let (addr, mut seen) = recording_backend(answers).await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (head, body) = exchange(&mut tcp, &get("/cookies", ""), false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, "ok");
    assert_eq!(
        fields(&head),
        [
            "Set-Cookie: a=1",
            "X-Upstream-Case: Kept",
            "Set-Cookie: b=2",
            "Date: Sun, 06 Nov 1994 08:49:37 GMT",
            "content-length: 2",
        ],
        "repeats in order, names as the upstream wrote them, its Date alone, hop-by-hop fields \
         (and X-Hop, which Connection names) gone"
    );
    seen.recv().await.unwrap();
    // The connection stays usable, and the next answer is not polluted by the previous head's fields.
    let (head, body) = exchange(&mut tcp, &get("/", ""), false).await;
    assert_eq!(body, "yes");
    let lines = fields(&head);
    assert_eq!(lines[0], "content-length: 3", "{head}");
    assert!(lines[1].starts_with("date: "), "a Date is added: {head}");
    assert_eq!(lines.len(), 2, "{head}");
}

#[tokio::test]
async fn the_request_loses_connection_named_fields_and_gets_forwarding_fields() {
    let (addr, mut seen) = recording_backend(answers).await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let client_ip = tcp.local_addr().unwrap().ip().to_string();
    let extra = "Connection: keep-alive, X-Client-Hop\r\nX-Client-Hop: 1\r\nKeep-Alive: 5\r\n\
                 X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nX-Real-IP: 6.6.6.6\r\n\
                 X-End: kept\r\n";
    let (_, body) = exchange(&mut tcp, &get("/", extra), false).await;
    assert_eq!(body, "yes");
    let upstream = seen.recv().await.unwrap().to_ascii_lowercase();
    let lines = fields(&upstream);
    for gone in ["connection", "x-client-hop", "keep-alive"] {
        assert!(
            !lines.iter().any(|l| l.starts_with(&format!("{gone}:"))),
            "{gone} forwarded: {upstream}"
        );
    }
    assert!(lines.contains(&"x-end: kept"), "{upstream}");
    assert!(
        lines.contains(&format!("host: {APP_HOST}").as_str()),
        "{upstream}"
    );
    let xff: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("x-forwarded-for:"))
        .collect();
    assert_eq!(
        xff,
        [&format!("x-forwarded-for: 10.0.0.1, 10.0.0.2, {client_ip}").as_str()],
        "{upstream}"
    );
    assert!(
        lines.contains(&format!("x-real-ip: {client_ip}").as_str()),
        "{upstream}"
    );
    assert!(lines.contains(&"x-forwarded-proto: http"), "{upstream}");
    assert!(
        lines.contains(&format!("x-forwarded-host: {APP_HOST}").as_str()),
        "{upstream}"
    );
}

#[tokio::test]
async fn head_204_and_304_answers_carry_no_body_and_keep_the_connection() {
    let (addr, _seen) = recording_backend(answers).await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let head_request = format!("HEAD /head HTTP/1.1\r\nHost: {APP_HOST}\r\n\r\n");
    let (head, body) = exchange(&mut tcp, &head_request, true).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Length: 42\r\n"),
        "a HEAD answer keeps the length of the resource: {head}"
    );
    assert_eq!(body, "");
    let (head, body) = exchange(&mut tcp, &get("/no-content", ""), true).await;
    assert!(head.starts_with("HTTP/1.1 204 No Content\r\n"), "{head}");
    assert!(head.contains("\r\nX-Empty: 1\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        !lower.contains("content-length") && !lower.contains("transfer-encoding"),
        "{head}"
    );
    assert_eq!(body, "");
    let (head, body) = exchange(&mut tcp, &get("/not-modified", ""), true).await;
    assert!(head.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{head}");
    assert!(head.contains("\r\nETag: \"v1\"\r\n"), "{head}");
    assert_eq!(body, "");
    // Nothing of those answers is left in the stream: the next response starts clean.
    let (head, body) = exchange(&mut tcp, &get("/", ""), false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, "yes");
}

#[tokio::test]
async fn a_chunked_answer_is_reframed_without_the_stray_length() {
    let (addr, _seen) = recording_backend(answers).await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    for _ in 0..2 {
        let (head, body) = exchange(&mut tcp, &get("/chunked", ""), false).await;
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("\r\ntransfer-encoding: chunked\r\n"),
            "{head}"
        );
        assert!(!lower.contains("content-length"), "{head}");
        assert!(
            head.contains("\r\nTrailer: X-Sum\r\n"),
            "end to end: {head}"
        );
        assert_eq!(lower.matches("transfer-encoding").count(), 1, "{head}");
        let decoded: String = body
            .split("\r\n")
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(decoded, "hello world", "{body:?}");
    }
}

#[tokio::test]
async fn folded_or_control_bytes_in_an_upstream_head_get_502() {
    let (addr, _seen) = recording_backend(answers).await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    for path in ["/folded", "/control"] {
        let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
        let (head, _) = exchange(&mut tcp, &get(path, ""), false).await;
        assert!(head.starts_with("HTTP/1.1 502 "), "{path}: {head}");
        assert!(!head.contains("X-A"), "{path}: {head}");
    }
}

/// The request's header map is handed on with the response (emptied) so that the connection's next request
/// head reuses its allocation: none of a request's fields may reach its response, nor the next request sent
/// upstream on the same connection.
#[tokio::test]
async fn a_request_s_fields_reach_neither_its_response_nor_the_next_request() {
    let (addr, mut seen) = recording_backend(answers).await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let extra = "X-First-Only: 1\r\nX-First-Too: 2\r\nCookie: a=1\r\n";
    for (request, only) in [(get("/", extra), true), (get("/", ""), false)] {
        let (head, body) = exchange(&mut tcp, &request, false).await;
        assert_eq!(body, "yes");
        let lines = fields(&head);
        assert_eq!(
            lines.len(),
            2,
            "only the upstream's length and a Date: {head}"
        );
        assert_eq!(lines[0], "content-length: 3", "{head}");
        assert!(lines[1].starts_with("date: "), "{head}");
        let upstream = seen.recv().await.unwrap().to_ascii_lowercase();
        for field in ["x-first-only: 1", "x-first-too: 2", "cookie: a=1"] {
            assert_eq!(
                fields(&upstream).contains(&field),
                only,
                "{field} in request {}: {upstream}",
                if only { 1 } else { 2 }
            );
        }
        assert!(
            upstream.contains(&format!("host: {APP_HOST}\r\n")),
            "{upstream}"
        );
    }
}
