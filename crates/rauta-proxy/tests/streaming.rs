//! Keep-alive on both sides, chunked and large streamed bodies, trailers, HEAD/204/304 and
//! `Expect: 100-continue`, through real sockets.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

const HOST: &str = "app.example";

async fn setup() -> (TestBackend, TestProxy) {
    let backend = TestBackend::start("a").await;
    let spec = RouteSpec {
        host: Some(HOST),
        path: "/",
        path_type: "Prefix",
        service: "svc",
        endpoints: vec![backend.addr],
    };
    let proxy = TestProxy::start(config(), table(&[spec])).await;
    (backend, proxy)
}

#[tokio::test]
async fn keep_alive_on_both_sides_reuses_connections() {
    let (backend, proxy) = setup().await;
    let mut client = Client::connect(proxy.addr).await;
    let mut upstream_ports = Vec::new();
    for _ in 0..5 {
        let (status, _, text) = client.get(HOST, "/").await;
        assert_eq!(status, StatusCode::OK);
        upstream_ports.push(Seen::parse(&text).get("peer").unwrap().to_owned());
    }
    // A second client connection, after the first is idle, finds the pooled upstream connection too.
    let mut other = Client::connect(proxy.addr).await;
    let (_, _, text) = other.get(HOST, "/").await;
    upstream_ports.push(Seen::parse(&text).get("peer").unwrap().to_owned());
    assert!(
        upstream_ports.iter().all(|p| *p == upstream_ports[0]),
        "one upstream connection: {upstream_ports:?}"
    );
    assert_eq!(
        backend.requests.load(std::sync::atomic::Ordering::SeqCst),
        6
    );
}

#[tokio::test]
async fn chunked_request_with_trailers_and_chunked_response() {
    let (_backend, proxy) = setup().await;
    let mut client = Client::connect(proxy.addr).await;
    let (mut tx, body) = channel_body();
    let req = Request::post("/upload")
        .header("host", HOST)
        .header("trailer", "x-sum")
        .body(body)
        .unwrap();
    let sender = tokio::spawn(async move {
        let mut hash = StreamHash::default();
        let mut offset = 0u64;
        for size in [1usize, 100, 5000, 70_000] {
            let chunk = pattern(offset, size);
            hash.update(&chunk);
            offset += size as u64;
            tx.send_data(chunk).await.unwrap();
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "42".parse().unwrap());
        tx.send_trailers(trailers).await.unwrap();
        (offset, hash.finish())
    });
    let resp = client.send(req).await.unwrap();
    let (status, _, text) = read_all(resp).await;
    let (len, hash) = sender.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let seen = Seen::parse(&text);
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"), "{text}");
    assert_eq!(seen.get("body_len"), Some(len.to_string().as_str()));
    assert_eq!(seen.get("body_hash"), Some(hash.to_string().as_str()));
    assert_eq!(
        seen.get("t:x-sum"),
        Some("42"),
        "request trailers pass: {text}"
    );

    let req = Request::get("/stream?bytes=100000&chunk=999")
        .header("host", HOST)
        .body(empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes, pattern(0, 100_000));
}

#[tokio::test]
async fn response_trailers_pass_when_the_client_accepts_them() {
    let (_backend, proxy) = setup().await;
    let mut client = Client::connect(proxy.addr).await;
    let req = Request::get("/trailers")
        .header("host", HOST)
        .header("te", "trailers")
        .body(empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    assert_eq!(trailers["x-checksum"], "abc");
    assert_eq!(
        collected.to_bytes(),
        Bytes::from_static(b"part one,part two")
    );
}

/// 50 MB up and back down through `/echo-body`, with a ping-pong on the first chunk proving that neither
/// direction is buffered: the echo of chunk one reaches the client before chunk two is even sent.
#[tokio::test]
async fn fifty_megabytes_stream_both_ways_without_buffering() {
    const TOTAL: u64 = 50 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let (_backend, proxy) = setup().await;
    let mut client = Client::connect(proxy.addr).await;
    let (mut tx, body) = channel_body();
    let req = Request::post("/echo-body")
        .header("host", HOST)
        .body(body)
        .unwrap();
    let first = pattern(0, CHUNK);
    tx.send_data(first.clone()).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.send(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut received = 0u64;
    let mut hash_in = StreamHash::default();
    // Chunk one comes back while the request body is still open.
    while received < CHUNK as u64 {
        let data = tokio::time::timeout(Duration::from_secs(10), next_data(&mut body))
            .await
            .unwrap()
            .unwrap();
        received += data.len() as u64;
        hash_in.update(&data);
    }
    let sender = tokio::spawn(async move {
        let mut hash = StreamHash::default();
        hash.update(&first);
        let mut offset = CHUNK as u64;
        while offset < TOTAL {
            let chunk = pattern(offset, CHUNK);
            hash.update(&chunk);
            offset += CHUNK as u64;
            tx.send_data(chunk).await.unwrap();
        }
        hash.finish()
    });
    while let Some(data) = next_data(&mut body).await {
        received += data.len() as u64;
        hash_in.update(&data);
    }
    let hash_out = sender.await.unwrap();
    assert_eq!(received, TOTAL);
    assert_eq!(hash_in.finish(), hash_out);
}

/// A 50 MB download whose backend stops after its first chunk until released: the client must already
/// hold those bytes, so the proxy streams instead of collecting.
#[tokio::test]
async fn fifty_megabyte_download_streams_before_the_backend_finishes() {
    const TOTAL: u64 = 50 * 1024 * 1024;
    let (backend, proxy) = setup().await;
    let mut client = Client::connect(proxy.addr).await;
    let path = format!("/stream?bytes={TOTAL}&chunk=65536&gate=1");
    let req = Request::get(path)
        .header("host", HOST)
        .body(empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), next_data(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert!(!first.is_empty());
    let mut hash = StreamHash::default();
    hash.update(&first);
    let mut received = first.len() as u64;
    backend.open_gate();
    while let Some(data) = next_data(&mut body).await {
        received += data.len() as u64;
        hash.update(&data);
    }
    assert_eq!(received, TOTAL);
    let mut expected = StreamHash::default();
    let mut offset = 0;
    while offset < TOTAL {
        let n = 65536.min(TOTAL - offset);
        expected.update(&pattern(offset, n as usize));
        offset += n;
    }
    assert_eq!(hash.finish(), expected.finish());
}

#[tokio::test]
async fn head_204_and_304_have_no_body_and_keep_the_connection() {
    let (_backend, proxy) = setup().await;
    let mut client = Client::connect(proxy.addr).await;
    let req = Request::head("/")
        .header("host", HOST)
        .body(empty())
        .unwrap();
    let (status, headers, text) = read_all(client.send(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.is_empty());
    let len: u64 = headers["content-length"].to_str().unwrap().parse().unwrap();
    assert!(len > 0, "HEAD keeps the GET's Content-Length");
    for code in [204u16, 304] {
        let (status, _, text) = client.get(HOST, &format!("/status?code={code}")).await;
        assert_eq!(status.as_u16(), code);
        assert!(text.is_empty());
    }
    let (status, _, _) = client.get(HOST, "/").await;
    assert_eq!(status, StatusCode::OK, "the connection is still usable");
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let (_backend, proxy) = setup().await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let interim = read_raw(&mut tcp, Duration::from_millis(500)).await;
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim:?}"
    );
    tcp.write_all(b"hello").await.unwrap();
    let answer = read_raw(&mut tcp, Duration::from_millis(500)).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("body_len=5"), "{answer}");
    assert!(
        !answer.contains("h:expect="),
        "the proxy handled Expect itself: {answer}"
    );
}
