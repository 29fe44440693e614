//! `rauta run` serving real traffic from manifests: routing, keep-alive, bodies, upstream failures and the
//! admin endpoints. Every test starts the real binary and real echo backends on loopback.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_exact_prefix_wildcard_hostless_and_default_backend() {
    let (web, _w) = backend("web").await;
    let (api, _a) = backend("api").await;
    let (wild, _x) = backend("wild").await;
    let (any, _y) = backend("any").await;
    let (fallback, _f) = backend("fallback").await;
    let dir = ManifestDir::new();
    let mut yaml = ingress_class();
    for (name, addr) in [
        ("web", web),
        ("api", api),
        ("wild", wild),
        ("any", any),
        ("fallback", fallback),
    ] {
        yaml.push_str(&service(name, &[addr]));
    }
    yaml.push_str(&ingress(
        "shop",
        &[(
            Some("shop.example"),
            &[path("/status", "Exact", "api"), path("/", "Prefix", "web")],
        )],
        None,
    ));
    yaml.push_str(&ingress(
        "sites",
        &[(Some("*.example"), &[path("/", "Prefix", "wild")])],
        None,
    ));
    yaml.push_str(&ingress(
        "anyhost",
        &[(None, &[path("/any", "Prefix", "any")])],
        None,
    ));
    yaml.push_str(&ingress("fallback", &[], Some("fallback")));
    dir.write("all.yaml", &yaml);
    let rauta = Rauta::start(dir.path(), &[]);

    for (host, path, expected) in [
        ("shop.example", "/status", "api"),
        ("SHOP.example:80", "/status", "api"),
        ("shop.example", "/status/", "web"),
        ("shop.example", "/status/more", "web"),
        ("shop.example", "/anything", "web"),
        ("blog.example", "/x", "wild"),
        ("a.b.example", "/any/thing", "any"),
        ("other.test", "/any", "any"),
        ("other.test", "/nothing", "fallback"),
        ("a.b.example", "/", "fallback"),
    ] {
        let answer = get(rauta.http, host, path).await.unwrap();
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{host}{path}: {}",
            answer.text()
        );
        assert_eq!(answer.backend(), Some(expected), "{host}{path}");
        // The backend sees the path unchanged.
        assert_eq!(answer.text(), format!("{expected} GET {path}\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_and_no_default_is_404_and_the_controller_default_backend_applies() {
    let (web, _w) = backend("web").await;
    let (fallback, _f) = backend("controller-default").await;
    let dir = ManifestDir::new();
    let yaml = ingress_class()
        + &service("web", &[web])
        + &ingress(
            "shop",
            &[(Some("shop.example"), &[path("/", "Prefix", "web")])],
            None,
        );
    dir.write("a.yaml", &yaml);
    let rauta = Rauta::start(dir.path(), &[]);
    assert_eq!(
        get(rauta.http, "unknown.example", "/")
            .await
            .unwrap()
            .status,
        StatusCode::NOT_FOUND
    );
    drop(rauta);

    dir.write("b.yaml", &service("fallback", &[fallback]));
    let rauta = Rauta::start(dir.path(), &["--default-backend", "default/fallback:80"]);
    let answer = get(rauta.http, "unknown.example", "/").await.unwrap();
    assert_eq!(answer.backend(), Some("controller-default"));
    assert_eq!(
        get(rauta.http, "shop.example", "/")
            .await
            .unwrap()
            .backend(),
        Some("web")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_serve_many_requests() {
    let (web, _w) = backend("web").await;
    let dir = ManifestDir::new();
    dir.write(
        "a.yaml",
        &(ingress_class()
            + &service("web", &[web])
            + &ingress("i", &[(None, &[path("/", "Prefix", "web")])], None)),
    );
    let rauta = Rauta::start(dir.path(), &[]);

    let mut connection = Connection::open(rauta.http).await.unwrap();
    for i in 0..50 {
        let answer = connection
            .send(Method::GET, "h.example", &format!("/r{i}"), Bytes::new())
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text(), format!("web GET /r{i}\n"));
    }
    // A request body on a keep-alive connection does not desynchronise it.
    let answer = connection
        .send(Method::POST, "h.example", "/echo", "hello")
        .await
        .unwrap();
    assert_eq!(answer.text(), "hello");
    let answer = connection
        .send(Method::GET, "h.example", "/after", Bytes::new())
        .await
        .unwrap();
    assert_eq!(answer.text(), "web GET /after\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_uploads_and_large_streamed_bodies_pass_through_intact() {
    let (web, _w) = backend("web").await;
    let dir = ManifestDir::new();
    dir.write(
        "a.yaml",
        &(ingress_class()
            + &service("web", &[web])
            + &ingress("i", &[(None, &[path("/", "Prefix", "web")])], None)),
    );
    let rauta = Rauta::start(dir.path(), &[]);

    // A 64 MiB download streamed from the backend.
    const DOWNLOAD: u64 = 64 << 20;
    let answer = get(rauta.http, "h.example", &format!("/bytes/{DOWNLOAD}"))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body.len() as u64, DOWNLOAD);
    assert_eq!(echo::pattern::verify(0, &answer.body), Ok(()));

    // A chunked upload of 8 MiB in uneven chunks, echoed back while it is still being sent.
    let (mut read_half, mut write_half) =
        TcpStream::connect(rauta.http).await.unwrap().into_split();
    let payload = echo::pattern::bytes(0, 8 << 20);
    let upload = {
        let payload = payload.clone();
        tokio::spawn(async move {
            write_half
                .write_all(b"POST /echo HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            for chunk in payload.chunks(77_777) {
                write_half
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await
                    .unwrap();
                write_half.write_all(chunk).await.unwrap();
                write_half.write_all(b"\r\n").await.unwrap();
            }
            write_half.write_all(b"0\r\n\r\n").await.unwrap();
            write_half
        })
    };
    let mut response = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        read_half.read_to_end(&mut response),
    )
    .await
    .unwrap()
    .unwrap();
    let _write_half = upload.await.unwrap();
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no response head")
        + 4;
    let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(&response[head_end..])
    } else {
        response[head_end..].to_vec()
    };
    assert_eq!(body.len(), payload.len());
    assert!(body == payload, "echoed body differs");
}

/// Decode a complete chunked body (no trailers).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_502_503_504() {
    let (slow, _s) = backend("slow").await;
    let dead = dead_address();
    let dir = ManifestDir::new();
    let yaml = ingress_class()
        + &service("slow", &[slow])
        + &service("dead", &[dead])
        + &service_with("empty", &[], &[slow])
        + &ingress(
            "i",
            &[(
                None,
                &[
                    path("/slow", "Prefix", "slow"),
                    path("/dead", "Prefix", "dead"),
                    path("/empty", "Prefix", "empty"),
                ],
            )],
            None,
        );
    dir.write("a.yaml", &yaml);
    let rauta = Rauta::start(dir.path(), &["--upstream-response-timeout", "300ms"]);

    let started = std::time::Instant::now();
    let answer = get(rauta.http, "h", "/slow/delay/5000").await.unwrap();
    assert_eq!(
        answer.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        answer.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        get(rauta.http, "h", "/slow/delay/10").await.unwrap().status,
        StatusCode::OK
    );
    assert_eq!(
        get(rauta.http, "h", "/dead").await.unwrap().status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        get(rauta.http, "h", "/empty").await.unwrap().status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_answer_431_and_413() {
    let (web, _w) = backend("web").await;
    let dir = ManifestDir::new();
    dir.write(
        "a.yaml",
        &(ingress_class()
            + &service("web", &[web])
            + &ingress("i", &[(None, &[path("/", "Prefix", "web")])], None)),
    );
    let rauta = Rauta::start(
        dir.path(),
        &["--max-body-bytes", "1000", "--max-headers", "20"],
    );

    let answer = Connection::open(rauta.http)
        .await
        .unwrap()
        .send(Method::POST, "h", "/echo", vec![b'x'; 5000])
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let answer = Connection::open(rauta.http)
        .await
        .unwrap()
        .send(Method::POST, "h", "/echo", vec![b'x'; 500])
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);

    let mut stream = TcpStream::connect(rauta.http).await.unwrap();
    let mut request = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
    for i in 0..40 {
        request.push_str(&format!("x-h{i}: v\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&response).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&response)
    );

    // One 20 KiB header is over the default --max-header-bytes of 16384; 4 KiB is fine.
    for (size, expected) in [(4 << 10, "HTTP/1.1 200"), (20 << 10, "HTTP/1.1 431")] {
        let mut stream = TcpStream::connect(rauta.http).await.unwrap();
        let request = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nx-big: {}\r\nConnection: close\r\n\r\n",
            "b".repeat(size)
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with(expected), "{size} bytes: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_report_health_routes_and_metrics() {
    let (web, _w) = backend("web").await;
    let dir = ManifestDir::new();
    dir.write(
        "a.yaml",
        &(ingress_class()
            + &service("web", &[web])
            + &ingress(
                "i",
                &[(
                    Some("h.example"),
                    &[path("/exact", "Exact", "web"), path("/", "Prefix", "web")],
                )],
                None,
            )),
    );
    let rauta = Rauta::start(dir.path(), &[]);

    let health = rauta.admin_get("/healthz").await;
    assert_eq!(
        (health.status, health.text().trim()),
        (StatusCode::OK, "ok")
    );
    assert_eq!(rauta.admin_get("/readyz").await.status, StatusCode::OK);
    assert_eq!(rauta.admin_get("/nope").await.status, StatusCode::NOT_FOUND);

    let routes = rauta.admin_get("/routes").await;
    assert_eq!(routes.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&routes.body).unwrap();
    let routes = json["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2, "{json:#}");
    let exact = routes.iter().find(|r| r["path"] == "/exact").unwrap();
    assert_eq!(exact["tier"], 1);
    assert_eq!(exact["host"], "h.example");
    assert_eq!(exact["service"], "default/web:80");
    assert_eq!(exact["endpoints"][0], web.to_string());
    assert_eq!(routes.iter().find(|r| r["path"] == "/").unwrap()["tier"], 2);

    for _ in 0..3 {
        assert_eq!(
            get(rauta.http, "h.example", "/exact").await.unwrap().status,
            StatusCode::OK
        );
    }
    let metrics = rauta.admin_get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let content_type = metrics.headers[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = metrics.text();
    let requests: f64 = text
        .lines()
        .filter(|l| l.starts_with("rauta_requests_total{") && l.contains("tier=\"3\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        requests >= 3.0,
        "rauta_requests_total with tier=\"3\" missing or low:\n{text}"
    );
    assert!(
        text.contains("rauta_config_reloads_total{result=\"failed\"} 0"),
        "{text}"
    );
}
