//! Shared fixtures: real backends, a real proxy and real clients, all on 127.0.0.1 port 0.

#![allow(dead_code)] // each test file uses a different subset

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::Hasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Channel, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use rauta_proxy::{bind_listener, Proxy, ProxyConfig, ProxyMetrics};
use rauta_routes::model::{EndpointSlice, Ingress, Inputs, Service};
use rauta_routes::{compile, CompileOptions, RouteTable};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A streaming hash: the same bytes give the same value whatever the chunking (SipHash `write` is
/// boundary-independent).
#[derive(Default)]
pub struct StreamHash(std::collections::hash_map::DefaultHasher);

impl StreamHash {
    pub fn update(&mut self, data: &[u8]) {
        self.0.write(data);
    }
    pub fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// Deterministic test content: byte `i` of any stream is `(i * 31 + 7) % 251`.
pub fn pattern(offset: u64, len: usize) -> Bytes {
    (0..len as u64)
        .map(|i| (((offset + i) * 31 + 7) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// A backend server answering as `name`. Behaviour by path:
/// - `/slow?ms=N`: wait N ms, then answer like the default.
/// - `/stream?bytes=N&chunk=K&gate=1`: stream N pattern bytes in K-byte chunks (chunked); with `gate`, send
///   the first chunk and then wait until [`TestBackend::open_gate`] is called.
/// - `/echo-body`: stream the request body back as it arrives.
/// - `/trailers`: a chunked body followed by trailers `x-checksum: abc` (announced with `Trailer`).
/// - `/hop`: a response carrying hop-by-hop headers.
/// - `/status?code=N`: answer with that status (no body for 204/304).
/// - anything else: a text report of the request (see [`Seen`]).
pub struct TestBackend {
    pub addr: SocketAddr,
    pub name: &'static str,
    /// Requests seen (any path).
    pub requests: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Notify>,
    task: JoinHandle<()>,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestBackend {
    pub async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let (req_count, gate2) = (requests.clone(), gate.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    return;
                };
                let (req_count, gate) = (req_count.clone(), gate2.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        req_count.fetch_add(1, Ordering::SeqCst);
                        backend_handle(name, peer, gate.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            name,
            requests,
            gate,
            task,
        }
    }

    /// Let gated `/stream` responses continue.
    pub fn open_gate(&self) {
        // `notify_one` keeps a permit if the stream has not reached its wait yet.
        self.gate.notify_one();
    }
}

type BackendBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

fn full(text: impl Into<Bytes>) -> BackendBody {
    Full::new(text.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn backend_handle(
    name: &'static str,
    peer: SocketAddr,
    gate: Arc<tokio::sync::Notify>,
    req: Request<Incoming>,
) -> Result<Response<BackendBody>, Infallible> {
    let q = query(&req);
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    match req.uri().path() {
        "/stream" => {
            let (total, chunk) = (num("bytes"), num("chunk").max(1));
            let gated = q.contains_key("gate");
            let (mut tx, body) = Channel::<Bytes, hyper::Error>::new(2);
            tokio::spawn(async move {
                let mut sent = 0u64;
                while sent < total {
                    let n = chunk.min(total - sent);
                    if tx.send_data(pattern(sent, n as usize)).await.is_err() {
                        return;
                    }
                    if sent == 0 && gated {
                        gate.notified().await;
                    }
                    sent += n;
                }
            });
            let mut resp = Response::new(body.boxed());
            resp.headers_mut()
                .insert("x-backend", name.parse().unwrap());
            return Ok(resp);
        }
        "/echo-body" => {
            let mut resp = Response::new(req.into_body().boxed());
            resp.headers_mut()
                .insert("x-backend", name.parse().unwrap());
            return Ok(resp);
        }
        "/trailers" => {
            let (mut tx, body) = Channel::<Bytes, hyper::Error>::new(2);
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from_static(b"part one,")).await;
                let _ = tx.send_data(Bytes::from_static(b"part two")).await;
                let mut trailers = HeaderMap::new();
                trailers.insert("x-checksum", "abc".parse().unwrap());
                let _ = tx.send_trailers(trailers).await;
            });
            let mut resp = Response::new(body.boxed());
            resp.headers_mut()
                .insert("trailer", "x-checksum".parse().unwrap());
            return Ok(resp);
        }
        "/hop" => {
            let mut resp = Response::new(full("hop"));
            let h = resp.headers_mut();
            h.insert("connection", "x-resp-secret".parse().unwrap());
            h.insert("x-resp-secret", "1".parse().unwrap());
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            h.insert("proxy-authenticate", "Basic".parse().unwrap());
            h.insert("x-resp-keep", "yes".parse().unwrap());
            return Ok(resp);
        }
        "/status" => {
            let status = StatusCode::from_u16(num("code") as u16).unwrap();
            let body = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
                Empty::new()
                    .map_err(|never: Infallible| match never {})
                    .boxed()
            } else {
                full("status")
            };
            let mut resp = Response::new(body);
            *resp.status_mut() = status;
            return Ok(resp);
        }
        "/slow" => tokio::time::sleep(Duration::from_millis(num("ms"))).await,
        _ => {}
    }
    // The default: report what arrived.
    let mut report = format!(
        "backend={name}\npeer={}\nmethod={}\nuri={}\nversion={:?}\n",
        peer.port(),
        req.method(),
        req.uri(),
        req.version()
    );
    for (k, v) in req.headers() {
        report.push_str(&format!(
            "h:{}={}\n",
            k,
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    let mut body = req.into_body();
    let (mut len, mut hash) = (0u64, StreamHash::default());
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        match frame.into_data() {
            Ok(data) => {
                len += data.len() as u64;
                hash.update(&data);
            }
            Err(frame) => {
                if let Some(trailers) = frame.trailers_ref() {
                    for (k, v) in trailers {
                        report.push_str(&format!(
                            "t:{}={}\n",
                            k,
                            String::from_utf8_lossy(v.as_bytes())
                        ));
                    }
                }
            }
        }
    }
    report.push_str(&format!("body_len={len}\nbody_hash={}\n", hash.finish()));
    let mut resp = Response::new(full(report));
    resp.headers_mut()
        .insert("x-backend", name.parse().unwrap());
    Ok(resp)
}

/// A parsed backend report.
#[derive(Debug)]
pub struct Seen(pub HashMap<String, String>);

impl Seen {
    pub fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.get(&format!("h:{name}"))
    }
}

/// One route of a test table.
pub struct RouteSpec<'a> {
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub path_type: &'a str,
    pub service: &'a str,
    /// Endpoints of the service (empty: a Service with no ready endpoint).
    pub endpoints: Vec<SocketAddr>,
}

/// The host most tests route by.
pub const APP_HOST: &str = "app.example";

/// A catch-all route (`APP_HOST`, Prefix `/`) to service `svc` at `endpoint`.
pub fn app_route(endpoint: SocketAddr) -> RouteSpec<'static> {
    RouteSpec {
        host: Some(APP_HOST),
        path: "/",
        path_type: "Prefix",
        service: "svc",
        endpoints: vec![endpoint],
    }
}

/// Compile a table through the real route compiler: one Ingress per route, Service port 80, one
/// EndpointSlice per endpoint (each endpoint has its own port on loopback).
pub fn table(routes: &[RouteSpec<'_>]) -> RouteTable {
    let mut inputs = Inputs::default();
    let mut services_done = std::collections::HashSet::new();
    for (i, r) in routes.iter().enumerate() {
        let mut rule = json!({"http": {"paths": [{"path": r.path, "pathType": r.path_type,
            "backend": {"service": {"name": r.service, "port": {"number": 80}}}}]}});
        if let Some(h) = r.host {
            rule["host"] = json!(h);
        }
        let ingress: Ingress = serde_json::from_value(json!({
            "metadata": {"name": format!("ing{i}"), "namespace": "default",
                         "creationTimestamp": format!("2024-01-01T00:00:{i:02}Z")},
            "spec": {"ingressClassName": "rauta", "rules": [rule]}
        }))
        .unwrap();
        inputs.ingresses.push(ingress);
        if !services_done.insert(r.service) {
            continue;
        }
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": r.service, "namespace": "default"},
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}
        }))
        .unwrap();
        inputs.services.push(service);
        for (j, ep) in r.endpoints.iter().enumerate() {
            let slice: EndpointSlice = serde_json::from_value(json!({
                "metadata": {"name": format!("{}-{j}", r.service), "namespace": "default",
                             "labels": {"kubernetes.io/service-name": r.service}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [ep.ip().to_string()], "conditions": {"ready": true}}],
                "ports": [{"port": ep.port(), "protocol": "TCP"}]
            }))
            .unwrap();
            inputs.endpoint_slices.push(slice);
        }
    }
    let compiled = compile(&inputs, &CompileOptions::default());
    assert!(
        compiled
            .diagnostics
            .iter()
            .all(|d| !d.message.contains("invalid")),
        "{:?}",
        compiled.diagnostics
    );
    compiled.table
}

/// A running proxy.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub routes: Arc<ArcSwap<RouteTable>>,
    pub registry: Registry,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestProxy {
    pub async fn start(config: ProxyConfig, table: RouteTable) -> Self {
        let routes = Arc::new(ArcSwap::from_pointee(table));
        let mut registry = Registry::default();
        let proxy = Proxy::new(
            config,
            routes.clone(),
            ProxyMetrics::register(&mut registry),
        );
        let listener = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            proxy
                .serve_http(listener, async {
                    let _ = rx.await;
                })
                .await
        });
        Self {
            addr,
            routes,
            registry,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Begin graceful shutdown; await `task` to see it finish.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// The metrics in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
        out
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A test config with short timeouts.
pub fn config() -> ProxyConfig {
    ProxyConfig {
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(10),
        ..ProxyConfig::default()
    }
}

/// One client connection (HTTP/1.1 keep-alive) to the proxy.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<ClientBody>,
    pub local: SocketAddr,
}

pub type ClientBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub fn empty() -> ClientBody {
    Empty::new().boxed()
}

pub fn body(data: impl Into<Bytes>) -> ClientBody {
    Full::new(data.into()).boxed()
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let local = tcp.local_addr().unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self { sender, local }
    }

    /// Send a request and return the response head and body unread.
    pub async fn send(&mut self, req: Request<ClientBody>) -> hyper::Result<Response<Incoming>> {
        self.sender.ready().await?;
        self.sender.send_request(req).await
    }

    /// GET `path` with `Host: host`; returns status, headers and the whole body as text.
    pub async fn get(&mut self, host: &str, path: &str) -> (StatusCode, HeaderMap, String) {
        let req = Request::get(path)
            .header("host", host)
            .body(empty())
            .unwrap();
        let resp = self.send(req).await.unwrap();
        read_all(resp).await
    }
}

/// Status, headers and the whole body as text.
pub async fn read_all(resp: Response<Incoming>) -> (StatusCode, HeaderMap, String) {
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Write raw bytes on a new connection and read until the peer closes or `wait` passes without data.
pub async fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    read_raw(&mut tcp, wait).await
}

/// Read until close or `wait` without data.
pub async fn read_raw(tcp: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(wait, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request body fed frame by frame from the test.
pub fn channel_body() -> (
    http_body_util::channel::Sender<Bytes, Infallible>,
    ClientBody,
) {
    let (tx, body) = Channel::<Bytes, Infallible>::new(4);
    (tx, body.boxed())
}

/// Read one data frame of a response body (skipping non-data frames).
pub async fn next_data(body: &mut Incoming) -> Option<Bytes> {
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            return Some(data);
        }
    }
    None
}
