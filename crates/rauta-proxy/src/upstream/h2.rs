//! Upstream HTTP/2 with prior knowledge (cleartext, "h2c"), for backends whose Service port says
//! `appProtocol: kubernetes.io/h2c` (gRPC servers above all).
//!
//! Each endpoint gets one multiplexed connection (per proxy, so per serving worker), shared by every
//! request to it, through hyper's HTTP/2 client. Invariants:
//! - At most one connect per endpoint is in progress: requests arriving meanwhile wait for it, and if it
//!   fails they all get its error instead of connecting one after another.
//! - A connection that closed (error, or GOAWAY from the upstream: hyper's dispatcher then ends) is
//!   replaced by a fresh one on the next request; a request that hyper reports as never sent is retried
//!   once on the fresh connection. Streams in flight on a going-away connection finish there.
//! - A connection unused for `idle_timeout` is released; the HTTP/2 connection closes once its last
//!   stream has ended.

use std::collections::HashMap;
use std::future::poll_fn;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::balance::Chosen;
use crate::body::{ClientBody, RequestBodyError, UpstreamBody};
use crate::config::ProxyConfig;
use crate::downstream::BodyError;
use crate::error::ProxyError;

use super::h2_body::{bridge, H2RequestBody, H2ResponseBody};

/// Shortest interval between idle sweeps.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// HTTP/2 PING interval on upstream connections, and how long a PING may go unanswered before the
/// connection is considered dead (its streams fail and the next request reconnects).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2 upstream connections, one per endpoint. Cloning shares them.
#[derive(Clone)]
pub(crate) struct H2Pool {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Mutex<HashMap<SocketAddr, Arc<Endpoint>>>,
    builder: Builder<TokioExecutor>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    sweeper_started: std::sync::atomic::AtomicBool,
}

/// One endpoint's connection. The async lock is held across a connect, which is what makes concurrent
/// requests wait for one connect instead of racing their own.
#[derive(Default)]
struct Endpoint {
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    sender: Option<SendRequest<H2RequestBody>>,
    /// Counts connections, so a failing request evicts only the connection it used.
    generation: u64,
    last_used: Option<Instant>,
    /// The last connect failure and when it happened: requests that were already waiting get it too.
    failed: Option<(Instant, Failure)>,
}

#[derive(Clone, Copy)]
enum Failure {
    Timeout,
    Connect(io::ErrorKind),
    Handshake,
}

impl Failure {
    fn error(self) -> ProxyError {
        match self {
            Self::Timeout => ProxyError::ConnectTimeout,
            Self::Connect(kind) => ProxyError::Connect(io::Error::from(kind)),
            Self::Handshake => ProxyError::Upstream(io::Error::other("HTTP/2 handshake failed")),
        }
    }
}

/// A response head from an HTTP/2 upstream, or why there is none.
pub(crate) type H2Result = Result<Response<H2ResponseBody>, ProxyError>;

impl H2Pool {
    pub(crate) fn new(config: &ProxyConfig) -> Self {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .max_header_list_size(u32::try_from(config.max_response_head()).unwrap_or(u32::MAX));
        Self {
            inner: Arc::new(Inner {
                endpoints: Mutex::default(),
                builder,
                connect_timeout: config.connect_timeout,
                idle_timeout: config.idle_timeout,
                sweeper_started: Default::default(),
            }),
        }
    }

    /// Send `req` (HTTP/2 form: absolute URI with scheme and authority) with `body` to `endpoint`; return
    /// once the response head arrived. `deadline`: a gRPC call's deadline, enforced on the response body
    /// too (see [`H2ResponseBody`]).
    ///
    /// A failed connect counts against `chosen`'s endpoint and, when `retry` allows it (idempotent
    /// methods), the request moves once to another endpoint of the backend, as on HTTP/1.1: nothing of it
    /// was sent.
    pub(crate) async fn send(
        &self,
        chosen: &mut Chosen,
        retry: bool,
        parts: http::request::Parts,
        body: ClientBody,
        limit: Option<u64>,
        deadline: Option<tokio::time::Instant>,
    ) -> H2Result {
        // Only the proxy's own HTTP/1.1 codec's bodies need pumping (see `h2_body`).
        let needs_pump = matches!(body, ClientBody::Http1(_));
        let body = UpstreamBody::new(body, limit);
        let (mut pump, body) = if needs_pump {
            let (pump, bridged) = bridge(body);
            (Some(pump), H2RequestBody::Bridged(bridged))
        } else {
            (None, H2RequestBody::Direct(body))
        };
        let mut req = Request::from_parts(parts, body);
        let mut retried = false;
        let mut moved = false;
        loop {
            let endpoint = chosen.endpoint();
            let (mut sender, generation) = match self.checkout(endpoint).await {
                Ok(checked_out) => checked_out,
                Err(err @ (ProxyError::Connect(_) | ProxyError::ConnectTimeout)) => {
                    if moved || !chosen.connect_failed(retry) {
                        return Err(err);
                    }
                    moved = true;
                    continue;
                }
                Err(err) => return Err(err),
            };
            let sent = {
                let mut sending = pin!(sender.try_send_request(req));
                poll_fn(|cx| {
                    if let Some(p) = pump.as_mut() {
                        if p.poll_pump(cx).is_ready() {
                            pump = None;
                        }
                    }
                    sending.as_mut().poll(cx)
                })
                .await
            };
            match sent {
                Ok(response) => {
                    return Ok(
                        response.map(|incoming| H2ResponseBody::new(incoming, pump, deadline))
                    )
                }
                Err(mut err) => {
                    let unsent = err.take_message();
                    let error = err.into_error();
                    if let Some(cause) = body_error(&error) {
                        // The client's body failed: the connection is fine.
                        return Err(cause);
                    }
                    self.evict(endpoint, generation).await;
                    match unsent {
                        Some(unsent) if !retried => {
                            retried = true;
                            req = unsent;
                        }
                        _ => return Err(ProxyError::Upstream(io::Error::other(error))),
                    }
                }
            }
        }
    }

    /// The endpoint's connection, connecting if there is none (or it closed).
    async fn checkout(
        &self,
        endpoint: SocketAddr,
    ) -> Result<(SendRequest<H2RequestBody>, u64), ProxyError> {
        let entry = {
            let mut map = self.inner.lock();
            map.entry(endpoint).or_default().clone()
        };
        let asked = Instant::now();
        let mut state = entry.state.lock().await;
        state.last_used = Some(Instant::now());
        if let Some(sender) = &state.sender {
            if !sender.is_closed() {
                return Ok((sender.clone(), state.generation));
            }
            state.sender = None;
        }
        if let Some((at, failure)) = state.failed {
            if at >= asked {
                return Err(failure.error());
            }
        }
        match self.connect(endpoint).await {
            Ok(sender) => {
                state.generation += 1;
                state.sender = Some(sender.clone());
                state.failed = None;
                Ok((sender, state.generation))
            }
            Err(failure) => {
                state.failed = Some((Instant::now(), failure));
                Err(failure.error())
            }
        }
    }

    /// Forget the endpoint's connection if it is still generation `generation`.
    async fn evict(&self, endpoint: SocketAddr, generation: u64) {
        let entry = self.inner.lock().get(&endpoint).cloned();
        if let Some(entry) = entry {
            let mut state = entry.state.lock().await;
            if state.generation == generation {
                state.sender = None;
            }
        }
    }

    async fn connect(&self, endpoint: SocketAddr) -> Result<SendRequest<H2RequestBody>, Failure> {
        self.start_sweeper();
        let stream =
            match tokio::time::timeout(self.inner.connect_timeout, TcpStream::connect(endpoint))
                .await
            {
                Err(_elapsed) => return Err(Failure::Timeout),
                Ok(Err(err)) => return Err(Failure::Connect(err.kind())),
                Ok(Ok(stream)) => stream,
            };
        // Small frames must not wait for Nagle; failure only costs latency.
        let _ = stream.set_nodelay(true);
        let handshake = self.inner.builder.handshake(TokioIo::new(stream));
        let (sender, connection) =
            match tokio::time::timeout(self.inner.connect_timeout, handshake).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(err)) => {
                    tracing::debug!(%endpoint, error = %err, "upstream HTTP/2 handshake failed");
                    return Err(Failure::Handshake);
                }
                Err(_elapsed) => return Err(Failure::Timeout),
            };
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%endpoint, error = %err, "upstream HTTP/2 connection ended with error");
            }
        });
        Ok(sender)
    }

    /// Start the task releasing idle connections, once; it ends when the pool is dropped.
    fn start_sweeper(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.sweeper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let period = (self.inner.idle_timeout / 2).max(MIN_SWEEP_INTERVAL);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match weak.upgrade() {
                    Some(inner) => inner.sweep(),
                    None => return,
                }
            }
        });
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<Endpoint>>> {
        // Poisoning needs a panic while holding the lock; the map is consistent between statements anyway.
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drop connections unused for `idle_timeout`, and endpoints left with nothing. An endpoint being
    /// connected (its lock held) is skipped until the next sweep.
    fn sweep(&self) {
        let mut map = self.lock();
        map.retain(|_, entry| {
            let Ok(mut state) = entry.state.try_lock() else {
                return true;
            };
            let idle = state
                .last_used
                .is_none_or(|at| at.elapsed() >= self.idle_timeout);
            if idle {
                state.sender = None;
            }
            !idle
        });
    }
}

/// The client-body failure behind a send error, if that is what it was.
fn body_error(error: &hyper::Error) -> Option<ProxyError> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(err) = cause.downcast_ref::<RequestBodyError>() {
            return Some(match err {
                RequestBodyError::TooLarge => ProxyError::BodyTooLarge,
                RequestBodyError::Client(BodyError::Malformed(why)) => ProxyError::Malformed(why),
                other => ProxyError::Upstream(io::Error::other(other.to_string())),
            });
        }
        source = cause.source();
    }
    None
}

/// Turn a request prepared for forwarding (origin-form target, Host set) into HTTP/2 form: the URI gets the
/// scheme and the authority (from Host, else the endpoint address), which HTTP/2 carries as pseudo-header
/// fields, and Host goes (`:authority` replaces it).
pub(crate) fn prepare(parts: &mut http::request::Parts, endpoint: SocketAddr) {
    let host = parts.headers.remove(http::header::HOST);
    let authority = host
        .as_ref()
        .and_then(|host| http::uri::Authority::try_from(host.as_bytes()).ok())
        .or_else(|| http::uri::Authority::try_from(endpoint.to_string()).ok());
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = authority;
    uri.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    match http::Uri::from_parts(uri) {
        Ok(absolute) => parts.uri = absolute,
        // Only without any authority (cannot happen: the endpoint address always renders as one); the
        // request then fails upstream as malformed rather than here.
        Err(err) => tracing::debug!(error = %err, "cannot build an HTTP/2 request URI"),
    }
    parts.version = http::Version::HTTP_2;
}
