//! Protocols beside plain HTTP/1.1, with real clients: HTTP/2 with prior knowledge (h2c) from curl, and a
//! WebSocket session from Python's `websockets` against a real `websockets` echo server behind the proxy;
//! graceful shutdown of an HTTP/2 connection (GOAWAY, open streams finish).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use rauta_proxy::ProxyConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// Whether `program args…` runs successfully; if not, fail under CI and skip (with a line saying so)
/// elsewhere.
async fn available(what: &str, program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{what} is required (run `cargo xtask setup`)");
        }
        eprintln!("skipped: needs {what} (run `cargo xtask setup`)");
    }
    ok
}

fn hostless(service: &'static str, endpoint: std::net::SocketAddr) -> RouteSpec<'static> {
    RouteSpec {
        host: None,
        path: "/",
        path_type: "Prefix",
        service,
        endpoints: vec![endpoint],
    }
}

#[tokio::test]
async fn curl_speaks_h2c_with_prior_knowledge() {
    if !available("curl", "curl", &["--version"]).await {
        return;
    }
    let backend = TestBackend::start("a").await;
    let proxy = TestProxy::start(config(), table(&[hostless("svc", backend.addr)])).await;
    let url = format!("http://{}/h2/path?q=1", proxy.addr);
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "-w",
            "\nhttp_version=%{http_version}\n",
        ])
        .arg(&url)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("http_version=2\n"), "{text}");
    let seen = Seen::parse(&text);
    assert_eq!(seen.get("backend"), Some("a"), "{text}");
    assert_eq!(seen.get("uri"), Some("/h2/path?q=1"), "{text}");
    assert_eq!(
        seen.get("version"),
        Some("HTTP/1.1"),
        "upstream stays HTTP/1.1: {text}"
    );
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(proxy.addr.to_string().as_str()),
        "{text}"
    );

    // A request body over HTTP/2 streams upstream and back.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "--data-binary",
            "hello over h2",
        ])
        .arg(format!("http://{}/echo-body", proxy.addr))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello over h2");

    // The same listener still speaks HTTP/1.1.
    let out = Command::new("curl")
        .args(["-sS", "--http1.1", "-w", "\nhttp_version=%{http_version}\n"])
        .arg(&url)
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("http_version=1.1\n"));
}

const WS_SERVER: &str = r#"
import asyncio
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"#;

const WS_CLIENT: &str = r#"
import asyncio, sys
from websockets.asyncio.client import connect

async def main(uri):
    async with connect(uri, max_size=None) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        big = bytes(range(256)) * 8192  # 2 MiB: more than any socket buffer, so back-pressure is exercised
        await ws.send(big)
        assert await ws.recv() == big
        print("ready", flush=True)
        sys.stdin.readline()
        await ws.send("after the reload")
        assert await ws.recv() == "after the reload"
        print("ok", flush=True)

asyncio.run(main(sys.argv[1]))
"#;

#[tokio::test]
async fn a_websocket_session_passes_through_and_outlives_timeouts_and_reloads() {
    if !available(
        "python3 with websockets",
        "python3",
        &["-c", "import websockets"],
    )
    .await
    {
        return;
    }
    let mut server = Command::new("python3")
        .args(["-c", WS_SERVER])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut server_out = BufReader::new(server.stdout.take().unwrap()).lines();
    let port: u16 = tokio::time::timeout(Duration::from_secs(10), server_out.next_line())
        .await
        .expect("echo server starts")
        .unwrap()
        .expect("echo server prints its port")
        .trim()
        .parse()
        .unwrap();
    let backend = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // A response timeout far shorter than the session: the tunnel must not be subject to it.
    let response_timeout = Duration::from_millis(300);
    let proxy = TestProxy::start(
        ProxyConfig {
            response_timeout,
            ..config()
        },
        table(&[hostless("ws", backend)]),
    )
    .await;

    let mut client = Command::new("python3")
        .args(["-c", WS_CLIENT])
        .arg(format!("ws://{}/chat", proxy.addr))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut client_out = BufReader::new(client.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), client_out.next_line())
        .await
        .expect("handshake and echoes within 20 s")
        .unwrap();
    assert_eq!(line.as_deref(), Some("ready"));

    // The route goes away and the session idles past the response timeout: the tunnel stays.
    proxy.routes.store(std::sync::Arc::new(table(&[])));
    tokio::time::sleep(response_timeout * 2).await;
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(10), client_out.next_line())
        .await
        .expect("echo after the reload")
        .unwrap();
    assert_eq!(line.as_deref(), Some("ok"));
    let status = tokio::time::timeout(Duration::from_secs(10), client.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert!(
        proxy
            .metrics_text()
            .contains(r#"code_class="1xx",service="default/ws:80"} 1"#),
        "{}",
        proxy.metrics_text()
    );
    // New requests see the new (empty) table.
    let mut http = Client::connect(proxy.addr).await;
    assert_eq!(http.get("any", "/").await.0, http::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_http2_streams_finish() {
    let backend = TestBackend::start("a").await;
    let mut proxy = TestProxy::start(config(), table(&[hostless("svc", backend.addr)])).await;
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/slow?ms=600", proxy.addr))
        .body(empty())
        .unwrap();
    let in_flight = tokio::spawn(sender.send_request(req));
    tokio::time::sleep(Duration::from_millis(150)).await;
    proxy.shutdown();
    let task = proxy.task.take().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!task.is_finished(), "an HTTP/2 stream is still in flight");
    let (status, _, text) = read_all(in_flight.await.unwrap().unwrap()).await;
    assert_eq!(status, http::StatusCode::OK, "{text}");
    assert!(text.contains("version=HTTP/1.1"), "{text}");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("drained")
        .unwrap()
        .unwrap();
}
