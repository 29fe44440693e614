//! The client-facing side: the accept loop, one task per connection, graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rauta_routes::RouteTable;
use tokio::net::TcpListener;

use crate::config::ProxyConfig;
use crate::forward;
use crate::headers::ip_header_value;
use crate::listener::{Acceptor, PlainTcp, Scheme};
use crate::metrics::ProxyMetrics;
use crate::pool::Pool;

/// Pause after an accept error that is not about a single connection (e.g. out of file descriptors), so the
/// loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// The userspace reverse proxy. Cheap to clone: all state is shared behind one `Arc`.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<ProxyInner>,
}

/// Shared by every connection and request.
pub(crate) struct ProxyInner {
    pub(crate) config: ProxyConfig,
    pub(crate) routes: Arc<ArcSwap<RouteTable>>,
    pub(crate) metrics: ProxyMetrics,
    pub(crate) pool: Pool,
    /// HTTP/1.1 only for now. HTTP/2 (h2c prior knowledge, or ALPN `h2` from a TLS acceptor) is enabled by
    /// dropping `http1_only`; the request path already handles HTTP/2 requests.
    server: auto::Builder<TokioExecutor>,
}

/// What every request on one client connection shares.
pub(crate) struct ConnContext {
    pub(crate) proxy: Arc<ProxyInner>,
    pub(crate) peer: SocketAddr,
    /// The client IP rendered once for `X-Forwarded-For` and `X-Real-IP`.
    pub(crate) client_ip: HeaderValue,
    pub(crate) scheme: Scheme,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy routing by the table in `routes`, read per request: swapping the table (a reload) affects
    /// requests that start afterwards and never drops a connection.
    pub fn new(
        config: ProxyConfig,
        routes: Arc<ArcSwap<RouteTable>>,
        metrics: ProxyMetrics,
    ) -> Self {
        let mut server = auto::Builder::new(TokioExecutor::new()).http1_only();
        server
            .http1()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .max_buf_size(config.downstream_buf_size())
            .max_headers(config.max_headers)
            .header_read_timeout(config.header_read_timeout);
        let pool = Pool::new(&config);
        Self {
            inner: Arc::new(ProxyInner {
                config,
                routes,
                metrics,
                pool,
                server,
            }),
        }
    }

    /// Serve plain HTTP on `listener` until `shutdown` completes. See [`Proxy::serve`].
    pub async fn serve_http(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        self.serve(listener, PlainTcp, shutdown).await
    }

    /// Accept connections from `listener`, prepare each with `acceptor` and serve HTTP on it until `shutdown`
    /// completes. Then stop accepting (the listener is closed), ask every connection to finish gracefully
    /// (idle keep-alive connections close at once, in-flight requests complete and their connection closes
    /// after the response) and return when all are gone. Callers wanting a drain deadline wrap this in a
    /// timeout.
    pub async fn serve<A: Acceptor>(
        &self,
        listener: TcpListener,
        acceptor: A,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        self.inner.pool.start_sweeper();
        let acceptor = Arc::new(acceptor);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        // Small responses must not wait for Nagle; failure only costs latency.
                        let _ = tcp.set_nodelay(true);
                        let proxy = self.inner.clone();
                        let acceptor = acceptor.clone();
                        let watcher = graceful.watcher();
                        tokio::spawn(serve_connection(proxy, acceptor, tcp, peer, watcher));
                    }
                    Err(err) if is_per_connection(&err) => continue,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    }
                }
            }
        }
        drop(listener);
        graceful.shutdown().await;
        Ok(())
    }
}

/// Errors that concern only the connection being accepted.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// One client connection, from handshake to close.
async fn serve_connection<A: Acceptor>(
    proxy: Arc<ProxyInner>,
    acceptor: Arc<A>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
) {
    let _open = proxy.metrics.open_connection();
    let io = match acceptor.accept(tcp).await {
        Ok(io) => io,
        Err(err) => {
            tracing::debug!(client = %peer, error = %err, "connection setup failed");
            return;
        }
    };
    let conn = Arc::new(ConnContext {
        proxy: proxy.clone(),
        peer,
        client_ip: ip_header_value(peer.ip()),
        scheme: acceptor.scheme(),
    });
    let service = service_fn(move |req| forward::handle(conn.clone(), req));
    let connection = proxy.server.serve_connection(TokioIo::new(io), service);
    if let Err(err) = watcher.watch(connection).await {
        tracing::debug!(client = %peer, error = %err, "connection ended with error");
    }
}
