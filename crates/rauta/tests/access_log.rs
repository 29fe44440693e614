//! The access log's `bytes` field for responses whose length is not known when their head is sent: chunked
//! and read-to-close HTTP/1.1 upstream answers, passed to HTTP/1.1 and HTTP/2 (h2c) clients. The line must
//! carry the bytes actually sent, as curl counted them.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Body sizes the backend streams.
const CHUNKED: usize = 3 * 40_000 + 17;
const TO_CLOSE: usize = 70_001;

/// An HTTP/1.1 backend with two answers by path: `/chunked` (chunked, several chunks) and `/close` (no
/// length: the body ends when the connection closes). One request per connection.
async fn streaming_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                if text.starts_with("GET /chunked ") {
                    let mut out =
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                            .to_vec();
                    for size in [40_000, 40_000, 40_000, 17] {
                        out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                        out.extend(std::iter::repeat_n(b'c', size));
                        out.extend_from_slice(b"\r\n");
                        // Separate writes: the proxy sees the chunks arrive over time.
                        let _ = tcp.write_all(&out).await;
                        out.clear();
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                    let _ = tcp.write_all(b"0\r\n\r\n").await;
                } else {
                    let _ = tcp
                        .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                        .await;
                    let _ = tcp.write_all(&vec![b'r'; TO_CLOSE]).await;
                }
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

/// curl `args` to `url`: the number of body bytes it received.
fn curl_size(args: &[&str], url: &str) -> usize {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{size_download}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, size) = text.split_once(' ').unwrap_or(("", ""));
    assert_eq!(
        code,
        "200",
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    size.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_of_streamed_responses_are_counted() {
    let backend = streaming_backend().await;
    let dir = ManifestDir::new();
    dir.write(
        "s.yaml",
        &(ingress_class()
            + &service("stream", &[backend])
            + &ingress("s", &[(None, &[path("/", "Prefix", "stream")])], None)),
    );
    let rauta = Rauta::start(dir.path(), &["--access-log", "--log-format", "json"]);
    let cases: [(&[&str], &str, usize); 4] = [
        (&["--http1.1"], "/chunked", CHUNKED),
        (&["--http1.1"], "/close", TO_CLOSE),
        (&["--http2-prior-knowledge"], "/chunked", CHUNKED),
        (&["--http2-prior-knowledge"], "/close", TO_CLOSE),
    ];
    for (n, (args, path, size)) in cases.iter().enumerate() {
        let url = format!("http://{}{path}", rauta.http);
        assert_eq!(curl_size(args, &url), *size, "{args:?} {path}");
        eventually("the access log line", || async {
            rauta.stdout_lines().len() > n
        })
        .await;
        let line = rauta.stdout_lines().remove(n);
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["path"], *path, "{line}");
        assert_eq!(v["status"], 200, "{line}");
        assert_eq!(v["bytes"], *size, "{args:?}: {line}");
        assert!(v["upstream"].is_string(), "{line}");
    }
}
