//! Routing, request-target checks, header rewriting and route reloads, through real sockets.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};

fn route<'a>(
    host: Option<&'a str>,
    path: &'a str,
    path_type: &'a str,
    service: &'a str,
    b: &TestBackend,
) -> RouteSpec<'a> {
    RouteSpec {
        host,
        path,
        path_type,
        service,
        endpoints: vec![b.addr],
    }
}

#[tokio::test]
async fn exact_and_prefix_routes_reach_their_backends_and_unmatched_get_404() {
    let (a, b, c) = (
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    );
    let proxy = TestProxy::start(
        config(),
        table(&[
            route(Some("app.example"), "/exact", "Exact", "svc-a", &a),
            route(Some("app.example"), "/api", "Prefix", "svc-b", &b),
            route(Some("other.example"), "/", "Prefix", "svc-c", &c),
        ]),
    )
    .await;
    let mut client = Client::connect(proxy.addr).await;
    for (host, path, want) in [
        ("app.example", "/exact", "a"),
        ("APP.example:80", "/exact?x=1", "a"),
        ("app.example", "/api", "b"),
        ("app.example", "/api/v1/items?q=2", "b"),
        ("other.example", "/anything", "c"),
    ] {
        let (status, headers, text) = client.get(host, path).await;
        assert_eq!(status, StatusCode::OK, "{host}{path}: {text}");
        assert_eq!(headers["x-backend"], want, "{host}{path}");
        let seen = Seen::parse(&text);
        assert_eq!(
            seen.get("uri"),
            Some(path),
            "upstream gets the origin-form target unchanged"
        );
        assert_eq!(seen.header("host"), Some(host), "Host passes unchanged");
    }
    for (host, path) in [
        ("app.example", "/exact/more"),
        ("app.example", "/apix"),
        ("nowhere.example", "/"),
    ] {
        let (status, _, text) = client.get(host, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{host}{path}");
        assert!(
            text.starts_with("404") && text.len() < 64,
            "short 404 body: {text:?}"
        );
    }
    // Every request above went over one client connection: keep-alive survived 404s too.
    let (status, _, _) = client.get("app.example", "/exact").await;
    assert_eq!(status, StatusCode::OK);

    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains(
            r#"rauta_requests_total{tier="3",code_class="2xx",service="default/svc-a:80"} 3"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"rauta_requests_total{tier="3",code_class="4xx",service="none"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("rauta_upstream_latency_seconds_count{service=\"default/svc-b:80\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("rauta_open_connections 1"), "{metrics}");
}

#[tokio::test]
async fn backend_without_endpoints_gets_503() {
    let proxy = TestProxy::start(
        config(),
        table(&[RouteSpec {
            host: Some("app.example"),
            path: "/",
            path_type: "Prefix",
            service: "empty",
            endpoints: vec![],
        }]),
    )
    .await;
    let (status, _, text) = Client::connect(proxy.addr)
        .await
        .get("app.example", "/x")
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.starts_with("503"), "{text}");
    assert!(proxy
        .metrics_text()
        .contains(r#"code_class="5xx",service="default/empty:80"} 1"#));
}

#[tokio::test]
async fn non_origin_form_targets_and_bad_hosts_get_400() {
    let a = TestBackend::start("a").await;
    let proxy = TestProxy::start(config(), table(&[route(None, "/", "Prefix", "svc-a", &a)])).await;
    let wait = Duration::from_millis(300);
    for (request, want) in [
        (
            &b"GET http://app.example/ HTTP/1.1\r\nHost: app.example\r\n\r\n"[..],
            "HTTP/1.1 400",
        ),
        (
            b"OPTIONS * HTTP/1.1\r\nHost: app.example\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\n\r\n",
            "HTTP/1.1 405",
        ),
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "HTTP/1.1 400",
        ),
    ] {
        let answer = raw(proxy.addr, request, wait).await;
        assert!(
            answer.starts_with(want),
            "{}: {answer}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(
        a.requests.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing reached the backend"
    );
    // HTTP/1.0 without Host matches host-less rules.
    let answer = raw(proxy.addr, b"GET /ten HTTP/1.0\r\n\r\n", wait).await;
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    assert!(answer.contains("backend=a"), "{answer}");
}

#[tokio::test]
async fn forwarded_headers_are_added_and_hop_by_hop_headers_removed_both_ways() {
    let a = TestBackend::start("a").await;
    let proxy = TestProxy::start(
        config(),
        table(&[route(Some("app.example"), "/", "Prefix", "svc-a", &a)]),
    )
    .await;
    let mut client = Client::connect(proxy.addr).await;
    let req = Request::get("/h?q=1")
        .header("host", "app.example")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-proto", "https")
        .header("x-real-ip", "6.6.6.6")
        .header("connection", "keep-alive, x-secret")
        .header("x-secret", "s")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9v")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers, deflate")
        .header("upgrade", "websocket")
        .header("x-end-to-end", "kept")
        .body(empty())
        .unwrap();
    let (status, _, text) = read_all(client.send(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let seen = Seen::parse(&text);
    assert_eq!(seen.header("x-forwarded-for"), Some("10.0.0.1, 127.0.0.1"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.example"));
    assert_eq!(seen.header("host"), Some("app.example"));
    assert_eq!(seen.header("te"), Some("trailers"));
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
    for gone in [
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert_eq!(
            seen.header(gone),
            None,
            "{gone} must not reach the upstream: {text}"
        );
    }
    // hyper's client adds its own `connection` only when needed; the client's never passes.
    assert_ne!(seen.header("connection"), Some("keep-alive, x-secret"));

    let (status, headers, _) = client.get("app.example", "/hop").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-resp-keep"], "yes");
    for gone in [
        "x-resp-secret",
        "keep-alive",
        "proxy-authenticate",
        "connection",
    ] {
        assert!(
            !headers.contains_key(gone),
            "{gone} must not reach the client: {headers:?}"
        );
    }
}

#[tokio::test]
async fn route_swap_keeps_connections_and_in_flight_requests() {
    let (old, new) = (
        TestBackend::start("old").await,
        TestBackend::start("new").await,
    );
    let proxy = TestProxy::start(
        config(),
        table(&[route(Some("app.example"), "/", "Prefix", "svc-old", &old)]),
    )
    .await;

    // A slow request in flight on its own connection while the table changes.
    let mut slow_client = Client::connect(proxy.addr).await;
    let slow = tokio::spawn(async move {
        let answer = slow_client.get("app.example", "/slow?ms=400").await;
        (answer, slow_client)
    });
    let mut client = Client::connect(proxy.addr).await;
    for _ in 0..3 {
        assert_eq!(client.get("app.example", "/").await.1["x-backend"], "old");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.routes.store(Arc::new(table(&[route(
        Some("app.example"),
        "/",
        "Prefix",
        "svc-new",
        &new,
    )])));
    for _ in 0..3 {
        assert_eq!(
            client.get("app.example", "/").await.1["x-backend"],
            "new",
            "same connection, new table"
        );
    }
    let ((status, headers, _), mut slow_client) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["x-backend"], "old",
        "the in-flight request kept its snapshot"
    );
    assert_eq!(
        slow_client.get("app.example", "/").await.1["x-backend"],
        "new",
        "its connection survived too"
    );
}
