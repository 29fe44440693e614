//! The echo backend over real sockets: in-process via `echo::spawn` and as the `rauta-echo` process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use http::{Method, StatusCode};
use rauta_testkit::client::{self, Connection};
use rauta_testkit::echo::{self, pattern};

async fn backend(name: &str) -> SocketAddr {
    let (addr, _handle) = echo::spawn("127.0.0.1:0".parse().unwrap(), name)
        .await
        .unwrap();
    addr
}

#[tokio::test]
async fn default_answer_names_backend_method_and_path() {
    let addr = backend("shop").await;
    let a = client::get(addr, "example.test", "/cart/items?x=1")
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.backend(), Some("shop"));
    assert_eq!(a.text(), "shop GET /cart/items\n");
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let addr = backend("ka").await;
    let mut conn = Connection::open(addr).await.unwrap();
    for i in 0..50 {
        let a = conn
            .send(Method::POST, "h", &format!("/n/{i}"), "")
            .await
            .unwrap();
        assert_eq!(a.text(), format!("ka POST /n/{i}\n"));
    }
}

#[tokio::test]
async fn echo_returns_request_body() {
    let addr = backend("e").await;
    let payload = pattern::bytes(7, 300_000);
    let mut conn = Connection::open(addr).await.unwrap();
    let a = conn
        .send(Method::POST, "h", "/api/echo", payload.clone())
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body.as_ref(), payload.as_slice());
}

#[tokio::test]
async fn bytes_streams_exact_pattern() {
    let addr = backend("b").await;
    let a = client::get(addr, "h", "/bytes/1000003").await.unwrap();
    assert_eq!(a.body.len(), 1_000_003);
    assert_eq!(pattern::verify(0, &a.body), Ok(()));
    // A non-numeric argument makes an ordinary path.
    let ordinary = client::get(addr, "h", "/bytes/x").await.unwrap();
    assert_eq!(
        (ordinary.status, ordinary.text()),
        (StatusCode::OK, "b GET /bytes/x\n".to_owned())
    );
}

#[tokio::test]
async fn status_and_delay() {
    let addr = backend("s").await;
    assert_eq!(
        client::get(addr, "h", "/status/503").await.unwrap().status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let start = std::time::Instant::now();
    let a = client::get(addr, "h", "/delay/120").await.unwrap();
    assert!(start.elapsed() >= std::time::Duration::from_millis(120));
    assert_eq!(a.text(), "s GET /delay/120\n");
}

#[tokio::test]
async fn headers_as_json() {
    let addr = backend("j").await;
    let a = client::get(addr, "app.example.test", "/headers")
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["host"], "app.example.test");
}

#[tokio::test]
async fn aborting_the_handle_closes_the_listener() {
    let (addr, handle) = echo::spawn("127.0.0.1:0".parse().unwrap(), "gone")
        .await
        .unwrap();
    handle.abort();
    let _ = handle.await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Kills the child on drop so a failing test leaves no process behind.
struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_prints_bound_addresses_and_serves_each() {
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_rauta-echo"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--listen",
                "127.0.0.1:0",
                "--name",
                "proc",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        let addr: SocketAddr = line.strip_prefix("listening on ").unwrap().parse().unwrap();
        assert_ne!(addr.port(), 0);
        let a = client::get(addr, "h", "/x").await.unwrap();
        assert_eq!(a.text(), "proc GET /x\n");
    }
}
