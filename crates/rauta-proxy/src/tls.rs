//! HTTPS: the TLS handshake as an [`Acceptor`], on the connection's own task.
//!
//! The certificate of each handshake comes from the `rustls::ServerConfig`'s resolver (in RAUTA,
//! `rauta_tls::SniResolver`): swapping the certificates there affects handshakes that start afterwards,
//! and an established connection keeps the session it negotiated, whatever reloads happen. After the
//! handshake the connection is served by [`TlsStream`] (see `stream` for why not tokio-rustls' own).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls::ServerConfig;

use crate::listener::{Acceptor, Scheme};

mod stream;

pub use stream::TlsStream;

/// How long a client has to complete the TLS handshake; then the connection is closed (a client that opens
/// connections and never finishes the handshake must not hold them forever).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS over TCP: runs the rustls handshake, then HTTP is served on the decrypted stream. HTTP/2 is chosen
/// when ALPN negotiated `h2`.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// An acceptor handshaking with `config` (its ALPN list decides whether `h2` is offered).
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            inner: tokio_rustls::TlsAcceptor::from(config),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Replace the handshake timeout ([`DEFAULT_HANDSHAKE_TIMEOUT`] by default).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}

impl Acceptor for TlsAcceptor {
    type Io = TlsStream;

    fn scheme(&self) -> Scheme {
        Scheme::Https
    }

    async fn accept(&self, tcp: TcpStream) -> io::Result<Self::Io> {
        match tokio::time::timeout(self.handshake_timeout, self.inner.accept(tcp)).await {
            Ok(Ok(handshaken)) => {
                let (tcp, conn) = handshaken.into_inner();
                Ok(TlsStream::new(tcp, conn))
            }
            Ok(Err(err)) => Err(err),
            Err(_elapsed) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake not completed in time",
            )),
        }
    }

    fn negotiated_h2(io: &Self::Io) -> bool {
        io.connection().alpn_protocol() == Some(b"h2")
    }
}
