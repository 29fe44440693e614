//! The upstream HTTP/1.1 codec against raw backends that send exact bytes: interim 1xx heads, oversized
//! heads, close-delimited and `Connection: close` responses, chunked bodies split at awkward places.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A raw backend: for every request head received on a connection it writes `parts` one by one (with a
/// short pause between them, so they arrive as separate reads), then keeps the connection open unless
/// `close` is set. Returns its address and the count of connections accepted.
async fn scripted_backend(parts: Vec<Vec<u8>>, close: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let parts = Arc::new(parts);
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let parts = parts.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    head.clear();
                    for part in parts.iter() {
                        if tcp.write_all(part).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn interim_1xx_heads_are_skipped() {
    let (addr, _) = scripted_backend(
        vec![
            b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n"
                .to_vec(),
            b"Content-Length: 5\r\n\r\nhello".to_vec(),
        ],
        false,
    )
    .await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    let mut client = Client::connect(proxy.addr).await;
    let (status, _, text) = client.get(APP_HOST, "/").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text, "hello");
}

#[tokio::test]
async fn an_oversized_response_head_gets_502() {
    let big = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "b".repeat(100_000)
    );
    let (addr, _) = scripted_backend(vec![big.into_bytes()], false).await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    let mut client = Client::connect(proxy.addr).await;
    let (status, _, text) = client.get(APP_HOST, "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
}

#[tokio::test]
async fn close_delimited_and_connection_close_responses_are_complete_and_not_reused() {
    let (addr, connections) = scripted_backend(
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ".to_vec(),
            b"the end".to_vec(),
        ],
        true,
    )
    .await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    let mut client = Client::connect(proxy.addr).await;
    for _ in 0..2 {
        let (status, _, text) = client.get(APP_HOST, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, "until the end");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 2);

    let (addr, connections) = scripted_backend(
        vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec()],
        false,
    )
    .await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    let mut client = Client::connect(proxy.addr).await;
    for _ in 0..2 {
        let (status, headers, text) = client.get(APP_HOST, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, "ok");
        assert!(
            headers.get("connection").is_none(),
            "hop-by-hop header stripped"
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "Connection: close is honoured"
    );
}

#[tokio::test]
async fn chunked_framing_split_across_reads_is_decoded_and_the_connection_reused() {
    let (addr, connections) = scripted_backend(
        vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5".to_vec(),
            b";ext=1\r\nhel".to_vec(),
            b"lo\r".to_vec(),
            b"\n6\r\n, worl\r\n1\r\nd\r\n0\r".to_vec(),
            b"\n\r\n".to_vec(),
        ],
        false,
    )
    .await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    let mut client = Client::connect(proxy.addr).await;
    for _ in 0..3 {
        let (status, _, text) = client.get(APP_HOST, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, "hello, world");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "kept alive");
}

#[tokio::test]
async fn a_truncated_body_does_not_pool_the_connection() {
    let (addr, connections) = scripted_backend(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec()],
        true,
    )
    .await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    for _ in 0..2 {
        let mut client = Client::connect(proxy.addr).await;
        let req = http::Request::get("/")
            .header("host", APP_HOST)
            .body(empty())
            .unwrap();
        let response = client.send(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let collected = http_body_util::BodyExt::collect(response.into_body()).await;
        assert!(collected.is_err(), "the client sees the body cut short");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}
