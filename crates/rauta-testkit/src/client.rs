//! A minimal HTTP/1.1 client for integration tests: one request per call, or many over one keep-alive
//! connection with [`Connection`].

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A fully read answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Answer {
    /// The `x-backend` header, if present and UTF-8.
    pub fn backend(&self) -> Option<&str> {
        self.headers
            .get(crate::echo::handler::BACKEND_HEADER)
            .and_then(|v| v.to_str().ok())
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects to `addr`; the connection driver runs on the current tokio runtime.
    pub async fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(conn);
        Ok(Self { sender })
    }

    /// Sends one request with the given `Host` and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        host: &str,
        path: &str,
        body: impl Into<Bytes>,
    ) -> io::Result<Answer> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, host)
            .body(Full::new(body.into()))
            .map_err(io::Error::other)?;
        self.sender.ready().await.map_err(io::Error::other)?;
        let response = self
            .sender
            .send_request(req)
            .await
            .map_err(io::Error::other)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// `GET path` with `Host: host` on a fresh connection.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> io::Result<Answer> {
    Connection::open(addr)
        .await?
        .send(Method::GET, host, path, Bytes::new())
        .await
}
