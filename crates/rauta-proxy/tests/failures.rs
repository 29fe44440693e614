//! Upstream failures (502/504), limits (431/413) and graceful shutdown, through real sockets.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use http::{Request, StatusCode};
use rauta_proxy::ProxyConfig;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn refused_connect_gets_502() {
    // A port that was just free: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = TestProxy::start(config(), table(&[app_route(dead)])).await;
    let mut client = Client::connect(proxy.addr).await;
    let (status, _, text) = client.get(APP_HOST, "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(text.starts_with("502"), "{text}");
    assert!(proxy
        .metrics_text()
        .contains(r#"code_class="5xx",service="default/svc:80"} 1"#));
}

#[tokio::test]
async fn connect_timeout_gets_502_within_the_timeout() {
    // A listener with a backlog of one that never accepts: once its queue is full, further SYNs are dropped
    // and connects hang until the proxy's connect timeout.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        // Some of these may themselves hang; they only need to fill the queue.
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let config = ProxyConfig {
        connect_timeout: Duration::from_millis(300),
        ..config()
    };
    let proxy = TestProxy::start(config, table(&[app_route(addr)])).await;
    let mut client = Client::connect(proxy.addr).await;
    let started = Instant::now();
    let (status, _, _) = client.get(APP_HOST, "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "took {took:?}"
    );
    drop(socket);
}

#[tokio::test]
async fn slow_backend_gets_504_within_the_response_timeout() {
    let backend = TestBackend::start("slow").await;
    let config = ProxyConfig {
        response_timeout: Duration::from_millis(300),
        ..config()
    };
    let proxy = TestProxy::start(config, table(&[app_route(backend.addr)])).await;
    let mut client = Client::connect(proxy.addr).await;
    let started = Instant::now();
    let (status, _, text) = client.get(APP_HOST, "/slow?ms=5000").await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{text}");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "took {took:?}"
    );
    // The client connection is still good.
    assert_eq!(client.get(APP_HOST, "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let backend = TestBackend::start("a").await;
    let config = ProxyConfig {
        max_header_bytes: 8192,
        max_headers: 20,
        ..config()
    };
    let proxy = TestProxy::start(config, table(&[app_route(backend.addr)])).await;
    let wait = Duration::from_millis(500);

    let big = format!(
        "GET / HTTP/1.1\r\nHost: {APP_HOST}\r\nX-Big: {}\r\n\r\n",
        "b".repeat(10_000)
    );
    let answer = raw(proxy.addr, big.as_bytes(), wait).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "header bytes: {answer:?}"
    );

    let mut many = format!("GET / HTTP/1.1\r\nHost: {APP_HOST}\r\n");
    for i in 0..30 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw(proxy.addr, many.as_bytes(), wait).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "header count: {answer:?}"
    );
    assert_eq!(backend.requests.load(Ordering::SeqCst), 0);

    // Just under both limits passes.
    let mut fine = format!(
        "GET / HTTP/1.1\r\nHost: {APP_HOST}\r\nX-Big: {}\r\n",
        "b".repeat(6_000)
    );
    for i in 0..10 {
        fine.push_str(&format!("X-H{i}: v\r\n"));
    }
    fine.push_str("Connection: close\r\n\r\n");
    let answer = raw(proxy.addr, fine.as_bytes(), wait).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let backend = TestBackend::start("a").await;
    let config = ProxyConfig {
        max_body_bytes: Some(1000),
        ..config()
    };
    let proxy = TestProxy::start(config, table(&[app_route(backend.addr)])).await;
    let mut client = Client::connect(proxy.addr).await;

    // Declared length: refused before any upstream work.
    let req = Request::post("/")
        .header("host", APP_HOST)
        .body(body(vec![b'x'; 1001]))
        .unwrap();
    let (status, _, text) = read_all(client.send(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert_eq!(
        backend.requests.load(Ordering::SeqCst),
        0,
        "never reached the backend"
    );

    // Exactly the limit passes.
    let mut client = Client::connect(proxy.addr).await;
    let req = Request::post("/")
        .header("host", APP_HOST)
        .body(body(vec![b'x'; 1000]))
        .unwrap();
    let (status, _, text) = read_all(client.send(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("body_len=1000"));

    // Chunked: cut off while streaming, answered 413 because the backend had not answered yet.
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut request =
        format!("POST / HTTP/1.1\r\nHost: {APP_HOST}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for _ in 0..3 {
        request.extend_from_slice(b"258\r\n"); // 600 bytes per chunk
        request.extend_from_slice(&[b'y'; 600]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    tcp.write_all(&request).await.unwrap();
    let answer = read_raw(&mut tcp, Duration::from_millis(500)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(proxy
        .metrics_text()
        .contains(r#"code_class="4xx",service="default/svc:80"} 2"#));
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests() {
    let backend = TestBackend::start("a").await;
    let mut proxy = TestProxy::start(config(), table(&[app_route(backend.addr)])).await;
    let addr = proxy.addr;
    let mut idle = Client::connect(addr).await;
    assert_eq!(idle.get(APP_HOST, "/").await.0, StatusCode::OK);

    let mut busy = Client::connect(addr).await;
    let in_flight = tokio::spawn(async move { busy.get(APP_HOST, "/slow?ms=600").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    proxy.shutdown();
    let task = proxy.task.take().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    assert!(!task.is_finished(), "a request is still in flight");

    let (status, _, text) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("drained")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "serve returned only after the request finished"
    );
    // The idle keep-alive connection was closed rather than kept forever.
    let req = Request::get("/")
        .header("host", APP_HOST)
        .body(empty())
        .unwrap();
    assert!(idle.send(req).await.is_err());
}
