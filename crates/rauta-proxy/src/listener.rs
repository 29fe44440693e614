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

    /// Whether the connection setup chose HTTP/2 for this stream (TLS ALPN `h2`), so the server speaks
    /// HTTP/2 from the first byte. Plain TCP never negotiates: cleartext HTTP/2 (h2c with prior knowledge)
    /// is recognised by its connection preface instead.
    fn negotiated_h2(_io: &Self::Io) -> bool {
        false
    }
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
    TcpListener::from_std(bind_socket(addr, false)?)
}

/// Bind `count` listening sockets on the same address, one per serving thread, like nginx's `reuseport`:
/// with `SO_REUSEPORT` the kernel spreads new connections over the sockets, so each thread accepts from its
/// own queue and no two threads contend for one accept lock.
///
/// Port 0 picks a free port for the first socket and binds the others to the same port. A single socket is
/// bound without `SO_REUSEPORT`, so that a second process cannot silently join it. The sockets are
/// non-blocking and not yet registered with any runtime: each thread converts its own with
/// [`TcpListener::from_std`] inside the runtime that polls it.
pub fn bind_listener_group(
    addr: SocketAddr,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let reuse_port = count > 1;
    let first = bind_socket(addr, reuse_port)?;
    let bound = first.local_addr()?;
    let mut group = Vec::with_capacity(count);
    group.push(first);
    while group.len() < count {
        group.push(bind_socket(bound, reuse_port)?);
    }
    Ok(group)
}

fn bind_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_on_port_0_shares_one_port_and_each_socket_accepts() {
        let group = bind_listener_group("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let addr = group[0].local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        for listener in &group {
            assert_eq!(listener.local_addr().unwrap(), addr);
        }
        // Enough connections that the kernel's hash spreads them over more than one socket; every one must
        // land in some socket's accept queue.
        let clients: Vec<_> = (0..32)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut per_socket = vec![0usize; group.len()];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while per_socket.iter().sum::<usize>() < clients.len()
            && std::time::Instant::now() < deadline
        {
            for (listener, count) in group.iter().zip(&mut per_socket) {
                while listener.accept().is_ok() {
                    *count += 1;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let accepted: usize = per_socket.iter().sum();
        let sockets_used = per_socket.iter().filter(|&&n| n > 0).count();
        assert_eq!(accepted, clients.len());
        assert!(sockets_used > 1, "all connections went to one socket");
    }

    #[test]
    fn a_single_listener_does_not_share_its_port() {
        let single = bind_listener_group("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let addr = single[0].local_addr().unwrap();
        let err = bind_listener_group(addr, 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
