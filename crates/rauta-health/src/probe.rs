//! Probes: the active HTTP check (`GET path`, pass on 200-399) and the TCP connect used to probe an
//! ejected endpoint back when no HTTP check is configured.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest status line read; a longer one fails the check.
const MAX_STATUS_LINE: usize = 1024;

/// `GET path` on `addr` with `Connection: close`; passes on a 200-399 status within `timeout`.
pub(crate) async fn http(addr: SocketAddr, path: &str, timeout: Duration) -> bool {
    match tokio::time::timeout(timeout, status(addr, path)).await {
        Ok(Ok(code)) => (200..400).contains(&code),
        Ok(Err(error)) => {
            tracing::trace!(endpoint = %addr, %error, "health check failed");
            false
        }
        Err(_elapsed) => false,
    }
}

/// A TCP connect within `timeout`.
pub(crate) async fn tcp(addr: SocketAddr, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// The status code of `GET path` on `addr`.
async fn status(addr: SocketAddr, path: &str) -> io::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: rauta-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            return parse_status_line(&buf[..end])
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"));
        }
        if buf.len() > MAX_STATUS_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "status line too long",
            ));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `HTTP/1.x NNN reason` → NNN.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/2 200"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 x"), None);
        assert_eq!(parse_status_line(b"garbage"), None);
    }

    /// A one-shot server answering every connection with `answer`, recording the request head.
    async fn server(answer: &'static str) -> (SocketAddr, tokio::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let _ = tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .await;
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn http_check_passes_on_2xx_and_fails_on_5xx_refused_and_silence() {
        let (ok, mut requests) = server("HTTP/1.1 204 No Content\r\n\r\n").await;
        assert!(http(ok, "/healthz?x=1", Duration::from_secs(2)).await);
        let head = requests.recv().await.unwrap();
        assert!(head.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("Host: {ok}\r\n")), "{head}");

        let (bad, _r) = server("HTTP/1.1 500 Internal Server Error\r\n\r\n").await;
        assert!(!http(bad, "/", Duration::from_secs(2)).await);

        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(!http(refused, "/", Duration::from_secs(2)).await);
        assert!(!tcp(refused, Duration::from_secs(2)).await);
        assert!(tcp(ok, Duration::from_secs(2)).await);

        // Accepts but never answers: the timeout fails it.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        assert!(!http(silent_addr, "/", Duration::from_millis(200)).await);
    }
}
