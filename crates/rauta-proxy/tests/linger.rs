//! The proxy's own answers to HTTP/2 requests wait (briefly) for the rest of the request body, so that a
//! client still uploading is never answered and reset mid-upload (curl 7.88 fails such requests: see
//! `src/linger.rs`).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};

/// A route to an endpoint that refuses connections, so the proxy answers 502 itself.
async fn proxy_to_nowhere() -> TestProxy {
    let dead: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let route = RouteSpec {
        host: None,
        path: "/",
        path_type: "Prefix",
        service: "dead",
        endpoints: vec![dead],
    };
    TestProxy::start(config(), table(&[route])).await
}

async fn h2_sender(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<ClientBody> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    sender
}

#[tokio::test]
async fn own_answer_comes_after_the_request_body_and_the_stream_ends_cleanly() {
    let proxy = proxy_to_nowhere().await;
    let mut sender = h2_sender(proxy.addr).await;
    let (mut tx, body) = channel_body();
    let req = Request::post(format!("http://{}/upload", proxy.addr))
        .body(body)
        .unwrap();
    let pending = tokio::spawn(sender.send_request(req));
    // The connect to the dead endpoint fails at once; the answer waits for the body.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !pending.is_finished(),
        "answered before the request body was sent"
    );
    tx.send_data(Bytes::from_static(b"the body")).await.unwrap();
    drop(tx);
    let response = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("answered once the body ended")
        .unwrap()
        .unwrap();
    let (status, _, text) = read_all(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    // The next request on the same connection is served the same way: nothing was reset.
    let req = Request::get(format!("http://{}/again", proxy.addr))
        .body(empty())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn a_body_that_does_not_end_delays_the_own_answer_only_briefly() {
    let proxy = proxy_to_nowhere().await;
    let mut sender = h2_sender(proxy.addr).await;
    let (mut tx, body) = channel_body();
    tx.send_data(Bytes::from_static(b"first part"))
        .await
        .unwrap();
    let req = Request::post(format!("http://{}/stream", proxy.addr))
        .body(body)
        .unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("answered although the body never ended")
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    drop(tx);
}
