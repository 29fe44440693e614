//! Upstream connection pool behaviour seen from real backends: connections closed by the upstream while
//! idle, abandoned responses, idle expiry.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};
use rauta_proxy::ProxyConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A raw backend that answers one keep-alive request per connection and then closes it after `linger`,
/// as upstreams with a short keep-alive timeout do. Returns its address and the count of connections.
async fn closing_backend(linger: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(linger).await;
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn connections_closed_by_the_upstream_while_idle_are_not_reused() {
    let (addr, connections) = closing_backend(Duration::from_millis(20)).await;
    let proxy = TestProxy::start(config(), table(&[app_route(addr)])).await;
    let mut client = Client::connect(proxy.addr).await;
    for i in 0..3 {
        let (status, _, text) = client.get(APP_HOST, "/").await;
        assert_eq!(status, StatusCode::OK, "request {i}: {text}");
        assert_eq!(text, "ok");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        3,
        "a fresh upstream connection each time"
    );
}

#[tokio::test]
async fn an_abandoned_response_does_not_poison_the_pool() {
    let backend = TestBackend::start("a").await;
    let proxy = TestProxy::start(config(), table(&[app_route(backend.addr)])).await;
    let (_, _, text) = Client::connect(proxy.addr).await.get(APP_HOST, "/").await;
    let first_port = Seen::parse(&text).get("peer").unwrap().to_owned();

    // Read the first bytes of an endless-looking download, then hang up mid-body.
    let mut quitter = Client::connect(proxy.addr).await;
    let req = Request::get("/stream?bytes=10000000&chunk=1000&gate=1")
        .header("host", APP_HOST)
        .body(empty())
        .unwrap();
    let mut body = quitter.send(req).await.unwrap().into_body();
    assert!(next_data(&mut body).await.is_some());
    drop(body);
    drop(quitter);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Later requests work; the upstream connection that carried the abandoned body is not among them.
    let mut client = Client::connect(proxy.addr).await;
    for _ in 0..3 {
        let (status, _, text) = client.get(APP_HOST, "/").await;
        assert_eq!(status, StatusCode::OK);
        // The download reused the first request's idle connection; that one was closed, not pooled.
        assert_ne!(Seen::parse(&text).get("peer"), Some(first_port.as_str()));
    }
    backend.open_gate();
}

#[tokio::test]
async fn idle_upstream_connections_expire() {
    let backend = TestBackend::start("a").await;
    let config = ProxyConfig {
        idle_timeout: Duration::from_millis(200),
        ..config()
    };
    let proxy = TestProxy::start(config, table(&[app_route(backend.addr)])).await;
    let mut client = Client::connect(proxy.addr).await;
    let peer = |text: &str| Seen::parse(text).get("peer").unwrap().to_owned();
    let first = peer(&client.get(APP_HOST, "/").await.2);
    assert_eq!(
        peer(&client.get(APP_HOST, "/").await.2),
        first,
        "reused while fresh"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(
        peer(&client.get(APP_HOST, "/").await.2),
        first,
        "a new connection after the idle timeout"
    );
}
