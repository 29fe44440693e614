//! Health-aware balancing through the real binary: a backend killed under a steady request loop stops
//! getting requests within a second without a client seeing an error (connect-failure retry, outlier
//! ejection), and gets requests again once it is back; an endpoint failing its active health check is
//! taken out; a backend whose endpoints all fail fails open.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// `service(name, endpoints)` with `annotations` on the Service.
fn healthy_metric(service: &str, endpoint: SocketAddr) -> String {
    format!("rauta_endpoint_healthy{{service=\"default/{service}:80\",endpoint=\"{endpoint}\"}}")
}

/// What the request loop saw: (when, backend name or error text).
type Seen = Arc<Mutex<Vec<(Instant, Result<String, String>)>>>;

/// Requests on fresh connections (so the client port, and with it the Maglev pick, changes every time)
/// until aborted.
fn request_loop(proxy: SocketAddr, seen: Seen) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let result = match get(proxy, "shop.example", "/").await {
                Ok(a) if a.status == StatusCode::OK => Ok(a
                    .headers
                    .get("x-backend")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?")
                    .to_owned()),
                Ok(a) => Err(format!("status {}", a.status)),
                Err(e) => Err(e.to_string()),
            };
            seen.lock().unwrap().push((Instant::now(), result));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_is_ejected_without_client_errors_and_returns_when_back() {
    let (a, _a) = backend("a").await;
    let (b, b_task) = backend("b").await;
    let dir = ManifestDir::new();
    let mut yaml = ingress_class();
    yaml.push_str(&annotated_service(
        "web",
        &[a, b],
        &[("rauta.io/outlier-base-ejection-time", "500ms")],
    ));
    yaml.push_str(&ingress(
        "shop",
        &[(Some("shop.example"), &[path("/", "Prefix", "web")])],
        None,
    ));
    dir.write("all.yaml", &yaml);
    let rauta = Rauta::start(dir.path(), &["--workers", "2"]);

    let seen: Seen = Arc::default();
    let looping = request_loop(rauta.http, seen.clone());
    eventually("both backends serve", || {
        let seen = seen.clone();
        async move {
            let s = seen.lock().unwrap();
            ["a", "b"]
                .iter()
                .all(|n| s.iter().any(|(_, r)| r.as_deref() == Ok(*n)))
        }
    })
    .await;

    // Kill b: its listener and every open connection go away at once, as with a crashed process.
    b_task.abort();
    let _ = b_task.await;
    let killed = Instant::now();
    let metric = healthy_metric("web", b);
    eventually("b is marked unhealthy", || async {
        rauta.metric(&metric).await == Some(0.0)
    })
    .await;
    let ejected_after = killed.elapsed();
    assert!(
        ejected_after < Duration::from_secs(1),
        "b ejected only after {ejected_after:?}"
    );
    // Keep the loop going until it has sent 50 requests after the first second (on a loaded machine
    // that takes longer than on a quiet one); none of them may fail.
    let after_first_second = |s: &[(Instant, Result<String, String>)]| {
        s.iter()
            .filter(|(t, _)| *t > killed + Duration::from_secs(1))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while after_first_second(&seen.lock().unwrap()) <= 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let s = seen.lock().unwrap();
        let late: Vec<_> = s
            .iter()
            .filter(|(t, _)| *t > killed + Duration::from_secs(1))
            .collect();
        assert!(late.len() > 50, "the loop ran too slowly: {}", late.len());
        let errors: Vec<_> = late.iter().filter(|(_, r)| r.is_err()).collect();
        assert!(
            errors.is_empty(),
            "client errors after the first second: {errors:?}"
        );
        assert!(late.iter().all(|(_, r)| r.as_deref() == Ok("a")));
        // Requests in flight when b died may fail; a connect failure is retried on a.
        let all_errors = s.iter().filter(|(_, r)| r.is_err()).count();
        assert!(all_errors <= 4, "{all_errors} client errors in total");
    }
    let retries = rauta
        .metric("rauta_upstream_retries_total{service=\"default/web:80\"}")
        .await
        .unwrap_or(0.0);
    let ejections = rauta
        .metric("rauta_endpoint_ejections_total{service=\"default/web:80\"}")
        .await
        .unwrap_or(0.0);
    assert!(ejections >= 1.0, "ejections {ejections}");
    // The connect failures before the ejection were retried on a.
    assert!(retries >= 1.0, "retries {retries}");
    // Dead for a while (several failed probes back): it must still return promptly once restarted.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Bring b back on the same address: it is probed back in and gets requests again.
    let (_b2, _b2_task) = echo::spawn(b, "b").await.unwrap();
    let back = Instant::now();
    eventually("b is healthy again", || async {
        rauta.metric(&metric).await == Some(1.0)
    })
    .await;
    eventually("b serves again", || {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .iter()
                .any(|(t, r)| *t > back && r.as_deref() == Ok("b"))
        }
    })
    .await;
    assert!(
        back.elapsed() < Duration::from_secs(6),
        "b returned only after {:?}",
        back.elapsed()
    );
    looping.abort();
    rauta.wait_for_log("endpoint ejected after consecutive failed requests");
    rauta.wait_for_log("ejected endpoint probed back in");
}

/// A backend answering every request `500` with `x-backend: NAME`.
async fn failing_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                // One request per connection is enough here: answer and close.
                let _ = stream.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nx-backend: {name}\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbad\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_check_takes_out_a_failing_endpoint_and_all_unhealthy_fails_open() {
    let (good, _g) = backend("good").await;
    let bad = failing_backend("bad").await;
    let also_bad = failing_backend("also-bad").await;
    let checks = [
        ("rauta.io/health-check-path", "/healthz"),
        ("rauta.io/health-check-interval", "200ms"),
        ("rauta.io/health-check-unhealthy-threshold", "2"),
        ("rauta.io/health-check-healthy-threshold", "1"),
        // Passive ejection off: only the active check decides here.
        ("rauta.io/outlier-consecutive-failures", "0"),
    ];
    let dir = ManifestDir::new();
    let mut yaml = ingress_class();
    yaml.push_str(&annotated_service("web", &[good, bad], &checks));
    yaml.push_str(&annotated_service("broken", &[bad, also_bad], &checks));
    yaml.push_str(&ingress(
        "shop",
        &[(
            Some("shop.example"),
            &[
                path("/broken", "Prefix", "broken"),
                path("/", "Prefix", "web"),
            ],
        )],
        None,
    ));
    dir.write("all.yaml", &yaml);
    let rauta = Rauta::start(dir.path(), &[]);

    let bad_metric = healthy_metric("web", bad);
    let started = Instant::now();
    eventually("the endpoint answering 500 is unhealthy", || async {
        rauta.metric(&bad_metric).await == Some(0.0)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(rauta.metric(&healthy_metric("web", good)).await, Some(1.0));
    // Every new request goes to the healthy endpoint.
    for _ in 0..40 {
        let answer = get(rauta.http, "shop.example", "/").await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.headers["x-backend"], "good");
    }

    // Every endpoint of `broken` fails its check: the backend fails open, requests still reach them
    // (their own 500, not a 503 from the proxy), and the metric and the log say so.
    eventually("broken fails open", || async {
        rauta
            .metric("rauta_backend_fail_open{service=\"default/broken:80\"}")
            .await
            == Some(1.0)
    })
    .await;
    assert_eq!(
        rauta.metric(&healthy_metric("broken", bad)).await,
        Some(0.0)
    );
    assert_eq!(
        rauta.metric(&healthy_metric("broken", also_bad)).await,
        Some(0.0)
    );
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let answer = get(rauta.http, "shop.example", "/broken").await.unwrap();
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        names.insert(answer.headers["x-backend"].to_str().unwrap().to_owned());
    }
    assert_eq!(
        names.len(),
        2,
        "fail open spreads over every endpoint: {names:?}"
    );
    rauta.wait_for_log("failing open");
    assert_eq!(
        rauta
            .metric("rauta_backend_fail_open{service=\"default/web:80\"}")
            .await,
        Some(0.0)
    );
}

/// A backend that accepts connections and reads requests but never answers.
async fn hung_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            });
        }
    });
    addr
}

/// An endpoint that hangs until the proxy's response timeout (504) is ejected like one answering 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_timing_out_is_ejected_like_one_failing() {
    let (good, _good) = backend("good").await;
    let hung = hung_backend().await;
    let dir = ManifestDir::new();
    let mut yaml = ingress_class();
    yaml.push_str(&annotated_service(
        "web",
        &[good, hung],
        &[
            ("rauta.io/outlier-consecutive-failures", "2"),
            ("rauta.io/outlier-base-ejection-time", "60s"),
        ],
    ));
    yaml.push_str(&ingress(
        "shop",
        &[(Some("shop.example"), &[path("/", "Prefix", "web")])],
        None,
    ));
    dir.write("all.yaml", &yaml);
    let rauta = Rauta::start(
        dir.path(),
        &["--workers", "1", "--upstream-response-timeout", "200ms"],
    );
    let seen: Seen = Arc::default();
    let looping = request_loop(rauta.http, seen.clone());
    let metric = healthy_metric("web", hung);
    eventually("the hung endpoint is ejected", || async {
        rauta.metric(&metric).await == Some(0.0)
    })
    .await;
    // Allow for requests already in flight at the ejection (each takes at most the 200 ms timeout).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = Instant::now();
    eventually("20 answers after the ejection", || {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .iter()
                .filter(|(t, _)| *t > settled)
                .count()
                >= 20
        }
    })
    .await;
    looping.abort();
    let s = seen.lock().unwrap();
    // Before: some requests hit the hung endpoint and got 504 (what made it count as failing).
    assert!(
        s.iter()
            .any(|(_, r)| r.as_ref().err().is_some_and(|e| e.contains("504"))),
        "no 504 seen: {:?}",
        &s[..s.len().min(10)]
    );
    // After: only the good endpoint answers.
    let late: Vec<_> = s.iter().filter(|(t, _)| *t > settled).collect();
    assert!(
        late.iter().all(|(_, r)| r.as_deref() == Ok("good")),
        "{late:?}"
    );
}

/// h2c upstreams: an idempotent request whose endpoint refuses the connection is sent once to another
/// endpoint, as on HTTP/1.1. The h2c endpoint is a second RAUTA (its HTTP listener speaks h2c with prior
/// knowledge) in front of an echo backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_connect_failure_is_retried_on_another_endpoint() {
    let (echo, _echo) = backend("live").await;
    let inner_dir = ManifestDir::new();
    inner_dir.write(
        "inner.yaml",
        &(ingress_class()
            + &service("echo", &[echo])
            + &ingress("inner", &[(None, &[path("/", "Prefix", "echo")])], None)),
    );
    let inner = Rauta::start(inner_dir.path(), &[]);
    let dir = ManifestDir::new();
    // Ejection would hide missing retries after the first failures: effectively off here.
    let h2c = annotated_service(
        "web",
        &[dead_address(), inner.http],
        &[("rauta.io/outlier-consecutive-failures", "100000")],
    )
    .replacen(
        "      port: 80\n",
        "      port: 80\n      appProtocol: kubernetes.io/h2c\n",
        1,
    );
    dir.write(
        "all.yaml",
        &(ingress_class()
            + &h2c
            + &ingress(
                "shop",
                &[(Some("shop.example"), &[path("/", "Prefix", "web")])],
                None,
            )),
    );
    let rauta = Rauta::start(dir.path(), &["--workers", "1"]);
    // Fresh connections: the client port, and with it the Maglev pick, changes every time; about half of
    // the requests are first sent to the dead endpoint.
    for n in 0..30 {
        let answer = get(rauta.http, "shop.example", &format!("/{n}"))
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK, "request {n}");
        assert_eq!(answer.backend(), Some("live"), "request {n}");
    }
    let retries = rauta
        .metric("rauta_upstream_retries_total{service=\"default/web:80\"}")
        .await
        .unwrap_or(0.0);
    assert!(retries >= 1.0, "retries {retries}");
}

/// Health follows reloads as they happen (woken by the table swap, not by polling): an endpoint added by a
/// reload is health-checked, and taken out, within moments; one removed by a reload loses its series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_each_reload_at_once() {
    let (good, _g) = backend("good").await;
    let bad = failing_backend("bad").await;
    let checks = [
        ("rauta.io/health-check-path", "/healthz"),
        ("rauta.io/health-check-interval", "100ms"),
        ("rauta.io/health-check-unhealthy-threshold", "1"),
        ("rauta.io/outlier-consecutive-failures", "0"),
    ];
    let dir = ManifestDir::new();
    let shop = ingress(
        "shop",
        &[(Some("shop.example"), &[path("/", "Prefix", "web")])],
        None,
    );
    dir.write(
        "all.yaml",
        &(ingress_class() + &annotated_service("web", &[good], &checks) + &shop),
    );
    let rauta = Rauta::start(dir.path(), &[]);
    let good_metric = healthy_metric("web", good);
    let bad_metric = healthy_metric("web", bad);
    eventually("the first table is followed", || async {
        rauta.metric(&good_metric).await == Some(1.0)
    })
    .await;

    for round in 1..=3 {
        dir.write(
            "all.yaml",
            &(ingress_class() + &annotated_service("web", &[good, bad], &checks) + &shop),
        );
        let reloaded = Instant::now();
        eventually(
            &format!("round {round}: the added endpoint is checked and out"),
            || async { rauta.metric(&bad_metric).await == Some(0.0) },
        )
        .await;
        // Debounce (50 ms), one check interval and the scrape: well under a second on a quiet machine.
        assert!(
            reloaded.elapsed() < Duration::from_secs(3),
            "round {round}: {:?}",
            reloaded.elapsed()
        );
        dir.write(
            "all.yaml",
            &(ingress_class() + &annotated_service("web", &[good], &checks) + &shop),
        );
        eventually(
            &format!("round {round}: the removed endpoint's series is gone"),
            || async { rauta.metric(&bad_metric).await.is_none() },
        )
        .await;
    }
    assert_eq!(rauta.metric(&good_metric).await, Some(1.0));
}
