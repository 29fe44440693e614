//! The client-side HTTP/1.x codec through real sockets: pipelining, chunked bodies with trailers, request
//! smuggling defences, `Expect: 100-continue` with a refused body, HTTP/1.0 and the head read timeout.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use rauta_proxy::ProxyConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOST: &str = "app.example";

async fn setup(config: ProxyConfig) -> (TestBackend, TestProxy) {
    let backend = TestBackend::start("a").await;
    let spec = RouteSpec {
        host: Some(HOST),
        path: "/",
        path_type: "Prefix",
        service: "svc",
        endpoints: vec![backend.addr],
    };
    let proxy = TestProxy::start(config, table(&[spec])).await;
    (backend, proxy)
}

/// Read from `tcp` until the peer closes; panics if it stays open for `limit`. Returns the bytes and how
/// long the close took.
async fn read_to_close(tcp: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(limit, tcp.read_to_end(&mut out))
        .await
        .expect("the proxy closes the connection")
        .ok();
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (backend, proxy) = setup(config()).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    // Four requests in one write, one of them with a body, the last asking to close.
    let pipeline = format!(
        "GET /one HTTP/1.1\r\nHost: {HOST}\r\n\r\n\
         POST /two HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n\r\nhello\
         GET /three HTTP/1.1\r\nHost: {HOST}\r\n\r\n\
         GET /four HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(pipeline.as_bytes()).await.unwrap();
    let (answer, _) = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 4, "{answer}");
    let positions: Vec<usize> = ["uri=/one\n", "uri=/two\n", "uri=/three\n", "uri=/four\n"]
        .iter()
        .map(|uri| {
            answer
                .find(uri)
                .unwrap_or_else(|| panic!("{uri} in {answer}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in order: {answer}"
    );
    assert!(answer.contains("body_len=5"), "{answer}");
    assert_eq!(backend.requests.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn chunked_request_body_with_extensions_and_trailers_reaches_the_backend() {
    let (_backend, proxy) = setup(config()).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // The body arrives in pieces that split the framing itself.
    for piece in [
        &b"5;ext=a\r\nhel"[..],
        b"lo\r\n6\r",
        b"\n world\r\n0\r\nX-Su",
        b"m: 42\r\n\r\n",
    ] {
        tcp.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The connection stays usable for the next request.
    let next = format!("GET /after HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    tcp.write_all(next.as_bytes()).await.unwrap();
    let (answer, _) = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    let first = &answer[..answer.find("uri=/after").expect("second answered")];
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(first.contains("body_len=11"), "{answer}");
    assert!(first.contains("t:x-sum=42"), "trailer forwarded: {answer}");
    let mut expected = StreamHash::default();
    expected.update(b"hello world");
    assert!(
        first.contains(&format!("body_hash={}", expected.finish())),
        "{answer}"
    );
}

#[tokio::test]
async fn ambiguous_body_framing_gets_400_and_never_reaches_the_backend() {
    let (backend, proxy) = setup(config()).await;
    for framing in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 5 5\r\n",
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding : chunked\r\n",
    ] {
        let request =
            format!("POST / HTTP/1.1\r\nHost: {HOST}\r\n{framing}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
        let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let (answer, _) = read_to_close(&mut tcp, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{framing:?}: {answer}");
        assert_eq!(
            answer.matches("HTTP/1.1").count(),
            1,
            "{framing:?}: {answer}"
        );
    }
    let request =
        format!("POST / HTTP/1.0\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    let answer = raw(proxy.addr, request.as_bytes(), Duration::from_secs(2)).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "TE on 1.0: {answer}");
    assert_eq!(backend.requests.load(Ordering::SeqCst), 0);
    assert!(proxy
        .metrics_text()
        .contains(r#"code_class="4xx",service="none"} 9"#));
}

#[tokio::test]
async fn malformed_chunks_get_400_and_close() {
    let (_backend, proxy) = setup(config()).await;
    for body in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
    ] {
        let mut request =
            format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n")
                .into_bytes();
        request.extend_from_slice(body);
        let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
        tcp.write_all(&request).await.unwrap();
        let (answer, _) = read_to_close(&mut tcp, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 "),
            "{:?}: {answer}",
            String::from_utf8_lossy(body)
        );
    }
}

#[tokio::test]
async fn a_refused_declared_body_gets_no_100_continue() {
    let (backend, proxy) = setup(ProxyConfig {
        max_body_bytes: Some(10),
        ..config()
    })
    .await;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n"
    );
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let (answer, _) = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert_eq!(backend.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn http_1_0_closes_unless_kept_alive_and_gets_close_delimited_bodies() {
    let (_backend, proxy) = setup(config()).await;
    // Plain HTTP/1.0: one response, then the proxy closes.
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(format!("GET /plain HTTP/1.0\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (answer, took) = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer.contains("version=HTTP/1.1"),
        "upstream gets 1.1: {answer}"
    );
    assert!(took < Duration::from_secs(2));

    // Keep-alive asked: two requests on one connection.
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let ka = format!("GET /ka HTTP/1.0\r\nHost: {HOST}\r\nConnection: keep-alive\r\n\r\n");
    tcp.write_all(ka.as_bytes()).await.unwrap();
    let first = read_raw(&mut tcp, Duration::from_millis(300)).await;
    assert!(first.contains("connection: keep-alive\r\n"), "{first}");
    tcp.write_all(format!("GET /again HTTP/1.0\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (second, _) = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert!(second.contains("uri=/again"), "{second}");

    // A chunked upstream body reaches an HTTP/1.0 client delimited by the close.
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let req = format!("GET /stream?bytes=1000&chunk=100 HTTP/1.0\r\nHost: {HOST}\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw_answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut raw_answer))
        .await
        .unwrap()
        .unwrap();
    let split = raw_answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap();
    let head = String::from_utf8_lossy(&raw_answer[..split]).to_lowercase();
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(&raw_answer[split + 4..], &pattern(0, 1000)[..]);
}

#[tokio::test]
async fn slow_heads_and_idle_connections_are_closed_after_the_header_read_timeout() {
    let timeout = Duration::from_millis(400);
    let (backend, proxy) = setup(ProxyConfig {
        header_read_timeout: timeout,
        ..config()
    })
    .await;

    // Slowloris: a head dribbled one byte every 50 ms never completes in time.
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = tcp.into_split();
    let dribble = tokio::spawn(async move {
        let head = format!(
            "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: {}",
            "a".repeat(200)
        );
        for b in head.bytes() {
            if writer.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut answer))
        .await
        .expect("the proxy closes the connection")
        .ok();
    let closed_after = started.elapsed();
    dribble.abort();
    assert!(answer.is_empty(), "{answer:?}");
    assert!(
        closed_after >= timeout && closed_after < timeout * 2,
        "closed after {closed_after:?}"
    );
    assert_eq!(backend.requests.load(Ordering::SeqCst), 0);

    // A client that is merely slow but within the timeout is served, and its idle keep-alive connection is
    // closed after the timeout.
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    tcp.write_all(b"\r\n").await.unwrap();
    let served = Instant::now();
    let (answer, idle_for) = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let idle_for = idle_for.max(served.elapsed());
    assert!(
        idle_for >= timeout && idle_for < timeout * 3,
        "idle connection closed after {idle_for:?}"
    );
}
