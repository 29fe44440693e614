//! Listening sockets and the per-connection stream a listener hands to the HTTP server.
//!
//! The server only needs an `AsyncRead + AsyncWrite` stream and the scheme the client used. Plain TCP is
//! [`PlainTcp`]; a TLS acceptor plugs in later as another [`Acceptor`] whose `accept` runs the handshake
//! (on the connection's own task, never on the accept loop).

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use http::HeaderValue;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// Listen backlog: large enough for connection bursts under load.
const BACKLOG: i32 = 4096;

/// The scheme a client reached the proxy with (for `X-Forwarded-Proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    pub(crate) fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

/// Turns an accepted TCP connection into the stream HTTP is served on.
pub trait Acceptor: Send + Sync + 'static {
    /// The stream HTTP is served on.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// The scheme of every connection this acceptor yields.
    fn scheme(&self) -> Scheme;

    /// Prepare the stream (e.g. a TLS handshake). Runs on the connection's task; an error closes only that
    /// connection.
    fn accept(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// Plain HTTP over TCP: the stream is the socket itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcp;

impl Acceptor for PlainTcp {
    type Io = TcpStream;

    fn scheme(&self) -> Scheme {
        Scheme::Http
    }

    async fn accept(&self, tcp: TcpStream) -> io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// Bind a listening socket with `SO_REUSEADDR` (restart without waiting out TIME_WAIT) and a backlog of 4096.
/// Accepted sockets get `TCP_NODELAY` from the server loop. Must be called inside a tokio runtime.
pub fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}
