//! The client-facing side: the accept loop, one task per connection, protocol choice (RAUTA's own HTTP/1
//! codec, or hyper's HTTP/2 server for h2c prior knowledge and TLS ALPN `h2`), graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderValue, Request};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rauta_routes::RouteTable;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::ClientBody;
use crate::config::ProxyConfig;
use crate::downstream::{self, Outcome, Shutdown};
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
    /// Upstream HTTP/2 connections (backends with `appProtocol: kubernetes.io/h2c`).
    pub(crate) h2_pool: crate::upstream::H2Pool,
    /// HTTP/2 connections (h2c prior knowledge, or ALPN `h2` from a TLS acceptor). HTTP/1 is the own codec
    /// in `downstream`.
    h2: http2::Builder<TokioExecutor>,
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
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
        let pool = Pool::new(&config);
        let h2_pool = crate::upstream::H2Pool::new(&config);
        Self {
            inner: Arc::new(ProxyInner {
                config,
                routes,
                metrics,
                pool,
                h2_pool,
                h2,
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
    /// after the response; HTTP/2 connections get GOAWAY and finish their open streams; upgraded (WebSocket)
    /// connections run until either side closes them) and return when all are gone. Callers wanting a drain
    /// deadline wrap this in a timeout.
    ///
    /// Each connection speaks HTTP/1.x through the proxy's own codec, or HTTP/2 when the acceptor negotiated
    /// it (TLS ALPN `h2`) or the client opens with the HTTP/2 preface (h2c with prior knowledge).
    pub async fn serve<A: Acceptor>(
        &self,
        listener: TcpListener,
        acceptor: A,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        self.inner.pool.start_sweeper();
        let acceptor = Arc::new(acceptor);
        let drain = Drain::new();
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
                        let watch = drain.watch();
                        tokio::spawn(serve_connection(proxy, acceptor, tcp, peer, watch));
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
        drain.finish().await;
        Ok(())
    }
}

/// Graceful shutdown of one `serve` call's connections: a flag read on the request path and a watch channel
/// that wakes idle connections; every connection holds a receiver until it ends, so "all receivers gone" is
/// "all connections gone".
struct Drain {
    started: Arc<AtomicBool>,
    signal: watch::Sender<bool>,
}

/// One connection's view of [`Drain`].
pub(crate) struct DrainWatch {
    started: Arc<AtomicBool>,
    signal: watch::Receiver<bool>,
}

impl Drain {
    fn new() -> Self {
        Self {
            started: Arc::default(),
            signal: watch::Sender::new(false),
        }
    }

    fn watch(&self) -> DrainWatch {
        DrainWatch {
            started: self.started.clone(),
            signal: self.signal.subscribe(),
        }
    }

    /// Tell every connection to finish, and wait until all have.
    async fn finish(self) {
        // The flag first: a connection woken by the signal, or finishing a response, must see it set.
        self.started.store(true, Ordering::Relaxed);
        self.signal.send_replace(true);
        self.signal.closed().await;
    }
}

/// The flag is set however the `Drain` goes, before its sender's drop wakes the connections: a connection
/// that registered for the signal once only reads the flag afterwards (`downstream::Conn::poll_head_bytes`).
impl Drop for Drain {
    fn drop(&mut self) {
        self.started.store(true, Ordering::Relaxed);
    }
}

impl DrainWatch {
    /// Completes once shutdown has begun (at once if it already has).
    async fn started(&mut self) {
        // An error means the `Drain` is gone, which only happens after shutdown began.
        let _ = self.signal.wait_for(|&started| started).await;
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
    mut watch: DrainWatch,
) {
    let _open = proxy.metrics.open_connection();
    let io = match acceptor.accept(tcp).await {
        Ok(io) => io,
        Err(err) => {
            tracing::debug!(client = %peer, error = %err, "connection setup failed");
            return;
        }
    };
    let ctx = Arc::new(ConnContext {
        proxy: proxy.clone(),
        peer,
        client_ip: ip_header_value(peer.ip()),
        scheme: acceptor.scheme(),
    });
    if A::negotiated_h2(&io) {
        serve_h2(&proxy, ctx, io, &mut watch).await;
        return;
    }
    let started = watch.started.clone();
    let outcome = {
        let signal = pin!(watch.started());
        let shutdown = Shutdown {
            started: &started,
            signal,
        };
        downstream::serve(&ctx, io, shutdown, true).await
    };
    if let Outcome::Http2(io) = outcome {
        serve_h2(&proxy, ctx, io, &mut watch).await;
    }
}

/// Serve HTTP/2 on `io` with hyper; on shutdown, send GOAWAY and let open streams finish.
async fn serve_h2<I>(proxy: &ProxyInner, ctx: Arc<ConnContext>, io: I, watch: &mut DrainWatch)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let peer = ctx.peer;
    let service = service_fn(move |req: Request<Incoming>| {
        let ctx = ctx.clone();
        async move {
            let (req, parked) = crate::linger::park(req);
            let req = req.map(ClientBody::Http2);
            Ok::<_, Infallible>(forward::handle_lingering(&ctx, req, parked.as_ref(), None).await)
        }
    });
    let mut connection = pin!(proxy.h2.serve_connection(TokioIo::new(io), service));
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = watch.started() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(client = %peer, error = %err, "HTTP/2 connection ended with error");
    }
}
