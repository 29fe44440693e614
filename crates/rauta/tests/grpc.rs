//! gRPC through the real binary with real gRPC peers: a Python grpcio server (cleartext HTTP/2 with prior
//! knowledge, behind a Service port with `appProtocol: kubernetes.io/h2c`) and a Python grpcio client (h2c
//! with prior knowledge to the HTTP listener). Unary, server, client and bidi streaming, trailers, deadlines
//! enforced by the proxy, and the proxy's own failures as gRPC statuses. Also curl over HTTP/1.1 to the
//! HTTP/2 backend (the request body pumped across protocols) and h2load for many concurrent streams.
//!
//! Needs python3 with grpcio (`cargo xtask setup` installs it); without it the tests fail when CI=true and
//! are skipped with a message otherwise.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SERVER_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/server.py");
const CLIENT_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/client.py");

/// Whether python3 with grpcio is there; `false` (after saying so) means skip, unless CI=true.
fn have_grpcio() -> bool {
    require_python_module("grpc", "python3 with grpcio")
}

/// The Python gRPC server, killed on drop.
struct GrpcServer {
    child: Child,
    addr: SocketAddr,
}

impl GrpcServer {
    fn start() -> GrpcServer {
        Self::start_on(0)
    }

    /// On a given port (0: any).
    fn start_on(port: u16) -> GrpcServer {
        let mut child = Command::new("python3")
            .arg(SERVER_PY)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("port ")
            .unwrap_or_else(|| panic!("server said {line:?}"))
            .parse()
            .unwrap();
        GrpcServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the Python client scenario against `target`; its JSON output. Killed after 30 s.
fn client(target: SocketAddr, scenario: &str) -> serde_json::Value {
    let mut child = Command::new("python3")
        .args([CLIENT_PY, &target.to_string(), scenario])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gRPC client {scenario} did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "client {scenario} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A Service `NAME` whose port 80 says `appProtocol: kubernetes.io/h2c`, with one endpoint.
fn h2c_service(name: &str, endpoint: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n    - name: grpc\n      port: 80\n      appProtocol: kubernetes.io/h2c\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-0\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\nports:\n  - name: grpc\n    port: {port}\nendpoints:\n  - addresses: [\"{ip}\"]\n---\n",
        port = endpoint.port(),
        ip = endpoint.ip(),
    )
}

/// Manifests: `/test.Echo` to the live server, `/dead.Svc` to an address nothing listens on, `/stuck.Svc`
/// to `stuck` (a listener that never answers; the dead address when `None`); no other route.
fn manifests(live: SocketAddr) -> ManifestDir {
    manifests_with(live, None)
}

fn manifests_with(live: SocketAddr, stuck: Option<SocketAddr>) -> ManifestDir {
    let dir = ManifestDir::new();
    let yaml = ingress_class()
        + &h2c_service("grpc", live)
        + &h2c_service("dead", dead_address())
        + &h2c_service("stuck", stuck.unwrap_or_else(dead_address))
        + &ingress(
            "grpc",
            &[(
                None,
                &[
                    path("/test.Echo", "Prefix", "grpc"),
                    path("/dead.Svc", "Prefix", "dead"),
                    path("/stuck.Svc", "Prefix", "stuck"),
                ],
            )],
            None,
        );
    dir.write("grpc.yaml", &yaml);
    dir
}

#[test]
fn unary_and_all_streaming_kinds_with_trailers() {
    if !have_grpcio() {
        return;
    }
    let server = GrpcServer::start();
    let dir = manifests(server.addr);
    let rauta = Rauta::start(dir.path(), &[]);
    let out = client(rauta.http, "calls");
    assert_eq!(out["unary"], "hello", "{out}");
    assert_eq!(out["unary_trailers"]["x-trailer"], "kept", "{out}");
    assert_eq!(out["unary_big"], true, "{out}");
    assert_eq!(
        out["server_stream"],
        serde_json::json!(["0", "1", "2", "3", "4"])
    );
    assert_eq!(out["client_stream"], "20/20000", "{out}");
    assert_eq!(out["bidi"], serde_json::json!(["A", "B", "C"]));
    assert_eq!(out["bidi_lockstep"], serde_json::json!(["X", "Y", "Z"]));
    // The backend's own error status passes through (it travels in trailers).
    assert_eq!(out["fail"]["code"], "NOT_FOUND", "{out}");
    assert_eq!(out["fail"]["details"], "no such thing", "{out}");
}

#[test]
fn proxy_failures_are_grpc_statuses() {
    if !have_grpcio() {
        return;
    }
    let server = GrpcServer::start();
    let dir = manifests(server.addr);
    let rauta = Rauta::start(dir.path(), &[]);
    let out = client(rauta.http, "unavailable");
    assert_eq!(out["code"], "UNAVAILABLE", "{out}");
    assert_eq!(out["details"], "upstream connect failed", "{out}");
    let out = client(rauta.http, "unimplemented");
    assert_eq!(out["code"], "UNIMPLEMENTED", "{out}");
    assert_eq!(out["details"], "no route for host and path", "{out}");
}

#[test]
fn client_deadline_shorter_than_the_call() {
    if !have_grpcio() {
        return;
    }
    let server = GrpcServer::start();
    let dir = manifests(server.addr);
    let rauta = Rauta::start(dir.path(), &[]);
    let out = client(rauta.http, "deadline");
    assert_eq!(out["code"], "DEADLINE_EXCEEDED", "{out}");
    assert!(out["elapsed"].as_f64().unwrap() < 3.0, "{out}");
    // The proxy did not hang: the next call is answered at once.
    let out = client(rauta.http, "calls");
    assert_eq!(out["unary"], "hello", "{out}");
}

/// A gRPC request body: one uncompressed message `hello` (5-byte length prefix).
const HELLO: &[u8] = b"\x00\x00\x00\x00\x05hello";

/// curl with `args` plus the gRPC request headers, the message `HELLO` as body and the response head and
/// trailers on stdout (`-D -`, body discarded); (output, elapsed). Killed after 20 s.
fn curl_grpc(args: &[&str], url: &str) -> (String, Duration) {
    let (head, _, elapsed) = curl_grpc_with(args, url, HELLO);
    (head, elapsed)
}

/// [`curl_grpc`] with `message` as the request body; also returns the response body.
fn curl_grpc_with(args: &[&str], url: &str, message: &[u8]) -> (String, Vec<u8>, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, message).unwrap();
    let answer = dir.path().join("answer");
    let started = Instant::now();
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "-", "-o"])
        .arg(&answer)
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .args(args)
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(url)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8_lossy(&output.stdout).to_lowercase(),
        std::fs::read(&answer).unwrap_or_default(),
        elapsed,
    )
}

#[test]
fn proxy_enforces_grpc_timeout_as_the_deadline() {
    if !have_grpcio() {
        return;
    }
    let server = GrpcServer::start();
    // Accepts connections and never answers (not even the HTTP/2 settings).
    let stuck = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stuck_addr = stuck.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in stuck.incoming() {
            held.push(conn);
        }
    });
    let dir = manifests_with(server.addr, Some(stuck_addr));
    let rauta = Rauta::start(dir.path(), &[]);
    // curl has no deadline of its own: only the proxy can end the call at 300 ms.
    let url = format!("http://{}/stuck.Svc/Echo", rauta.http);
    let (head, elapsed) = curl_grpc(
        &["--http2-prior-knowledge", "-H", "grpc-timeout: 300m"],
        &url,
    );
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("grpc-status: 4\r\n"), "{head}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    // Without grpc-timeout the proxy's response timeout applies (here cut short to 1 s).
    drop(rauta);
    let rauta = Rauta::start(dir.path(), &["--upstream-response-timeout", "1s"]);
    let url = format!("http://{}/stuck.Svc/Echo", rauta.http);
    let (head, elapsed) = curl_grpc(&["--http2-prior-knowledge"], &url);
    assert!(head.contains("grpc-status: 4\r\n"), "{head}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn http1_client_to_h2c_backend_streams_body_and_trailers() {
    if !have_grpcio() {
        return;
    }
    let server = GrpcServer::start();
    let dir = manifests(server.addr);
    let rauta = Rauta::start(dir.path(), &[]);
    let url = format!("http://{}/test.Echo/Echo", rauta.http);
    // Content-Length and chunked request bodies, both pumped from the HTTP/1.1 codec into the HTTP/2 stream.
    for framing in [&[][..], &["-H", "transfer-encoding: chunked"][..]] {
        let mut args = vec!["--http1.1"];
        args.extend_from_slice(framing);
        let (head, _) = curl_grpc(&args, &url);
        assert!(head.starts_with("http/1.1 200"), "{head}");
        // Trailers reach an HTTP/1.1 client that asked for them (chunked response).
        assert!(head.contains("grpc-status: 0\r\n"), "{head}");
        assert!(head.contains("x-trailer: kept\r\n"), "{head}");
    }
    // A 4 MiB message, chunked: many frames through the one-frame pump, with back-pressure both ways.
    let payload: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut message = vec![0u8];
    message.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    message.extend_from_slice(&payload);
    let args = ["--http1.1", "-H", "transfer-encoding: chunked"];
    let (head, answer, _) = curl_grpc_with(&args, &url, &message);
    assert!(head.contains("grpc-status: 0\r\n"), "{head}");
    assert!(answer == message, "echoed {} bytes", answer.len());
}

#[test]
fn h2load_many_concurrent_streams_to_h2c_backend() {
    if !have_grpcio() {
        return;
    }
    let h2load = Command::new("h2load").arg("--version").output().is_ok();
    if !require(h2load, "h2load (nghttp2-client)") {
        return;
    }
    let server = GrpcServer::start();
    let dir = manifests(server.addr);
    let rauta = Rauta::start(dir.path(), &[]);
    let body = dir.file("hello.bin");
    std::fs::write(&body, HELLO).unwrap();
    let url = format!("http://{}/test.Echo/Echo", rauta.http);
    let output = Command::new("timeout")
        .args(["25", "h2load", "-n", "2000", "-c", "10", "-m", "10"])
        .args([
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "-d",
        ])
        .arg(&body)
        .arg(&url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "h2load failed:\n{text}");
    assert!(
        text.contains("2000 succeeded, 0 failed, 0 errored"),
        "h2load:\n{text}"
    );
    assert!(text.contains("status codes: 2000 2xx"), "h2load:\n{text}");
}

#[test]
fn backend_restart_is_unavailable_then_reconnected() {
    if !have_grpcio() {
        return;
    }
    let server = GrpcServer::start();
    let addr = server.addr;
    let dir = manifests(addr);
    let rauta = Rauta::start(dir.path(), &[]);
    assert_eq!(client(rauta.http, "echo")["code"], "OK");
    // The backend goes away with the proxy's connection to it open: the next call is UNAVAILABLE, fast.
    drop(server);
    let out = client(rauta.http, "echo");
    assert_eq!(out["code"], "UNAVAILABLE", "{out}");
    assert!(out["elapsed"].as_f64().unwrap() < 3.0, "{out}");
    // Back on the same address: a fresh connection is made for the next call.
    let _server = GrpcServer::start_on(addr.port());
    let out = client(rauta.http, "echo");
    assert_eq!(out["code"], "OK", "{out}");
}

#[test]
fn grpc_over_tls_with_alpn_h2() {
    if !have_grpcio() {
        return;
    }
    let server = GrpcServer::start();
    let dir = manifests(server.addr);
    // No TLS Secret: the HTTPS listener serves its generated default certificate (hence -k).
    let rauta = Rauta::start(dir.path(), &[]);
    let url = format!("https://{}/test.Echo/Echo", rauta.https);
    let (head, _) = curl_grpc(&["-k", "--http2"], &url);
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("grpc-status: 0\r\n"), "{head}");
    assert!(head.contains("x-trailer: kept\r\n"), "{head}");
    let url = format!("https://{}/dead.Svc/Echo", rauta.https);
    let (head, _) = curl_grpc(&["-k", "--http2"], &url);
    assert!(head.contains("grpc-status: 14\r\n"), "{head}");
}
