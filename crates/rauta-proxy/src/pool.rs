//! Upstream HTTP/1.1 connections, kept alive and pooled per endpoint address.
//!
//! A connection is checked out for one request and goes back to the pool only when its response body has
//! been read to the end (see [`Pooled`] and `upstream::ResponseBody`); a connection whose response was
//! abandoned is dropped, which closes it. Idle connections expire after `idle_timeout` (checked at checkout
//! and by a periodic sweep) and at most `max_idle_per_endpoint` are kept per endpoint. Each serving worker
//! has its own proxy and so its own pool: the lock is never contended.
//!
//! Pooled connections are plain `TcpStream`s with their read and write buffers; the exchange itself (the
//! HTTP/1.1 codec) is in `upstream`, run on the request's own task.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::{request, Response};
use tokio::net::TcpStream;

use crate::balance::Chosen;
use crate::body::{RequestBodyError, UpstreamBody};
use crate::config::ProxyConfig;
use crate::downstream::BodyError;
use crate::error::ProxyError;
use crate::headers::Forwarding;
use crate::upstream::tls::{self, UpstreamIo};
use crate::upstream::{self, Attempt, FieldSpans, ResponseBody, SendError};

/// Shortest interval between idle sweeps.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// The shared pool. Cloning shares it.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

/// Idle connections by endpoint. Keyed with [`FastHasher`]: the map is looked up twice per request
/// (checkout and release), and its keys are endpoint addresses from the route table, not client input.
type IdleMap = HashMap<SocketAddr, Vec<Idle>, BuildHasherDefault<FastHasher>>;

/// A one-multiply-per-word hasher for keys looked up on every request (SipHash showed up in the request
/// path's profile): endpoint addresses here, Service references in `metrics`. Not resistant to chosen keys,
/// which is fine for keys that come from the cluster (EndpointSlices, Ingress backends), never from clients.
#[derive(Default)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // FxHash's step: rotate, mix in, multiply by a large odd constant.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

struct PoolInner {
    idle: Mutex<IdleMap>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    /// Largest upstream response head accepted; larger ones answer 502.
    max_head: usize,
    sweeper_started: std::sync::atomic::AtomicBool,
}

struct Idle {
    stream: TcpStream,
    read_buf: BytesMut,
    write_buf: Vec<u8>,
    spans: FieldSpans,
    fields: Vec<u8>,
    since: Instant,
}

/// A connection checked out for one request, with its buffers (kept across requests so an exchange
/// allocates nothing for them).
pub(crate) struct Pooled {
    /// Plain TCP, or TLS for `kubernetes.io/wss` backends (those are never pooled).
    pub(crate) stream: UpstreamIo,
    /// Bytes read from the upstream and not consumed yet.
    pub(crate) read_buf: BytesMut,
    /// Request bytes (head, framing, small body frames) queued for writing.
    pub(crate) write_buf: Vec<u8>,
    /// Scratch space of the response head parse.
    pub(crate) spans: FieldSpans,
    /// A passed-through response head's fields (see `upstream::head::parse_head`): lent to the response
    /// body until the client's head is written, then given back, so the copy allocates nothing.
    pub(crate) fields: Vec<u8>,
    endpoint: SocketAddr,
    /// Taken from the pool rather than freshly connected (a failed send may then be retried).
    reused: bool,
    pool: Weak<PoolInner>,
}

impl Pooled {
    /// Whether the connection came from the pool rather than a fresh connect.
    pub(crate) fn reused(&self) -> bool {
        self.reused
    }

    /// The stream and the bytes read from it but not consumed, for a connection leaving the pool's care
    /// for good (an upgraded connection).
    pub(crate) fn into_parts(self) -> (UpstreamIo, BytesMut) {
        (self.stream, self.read_buf)
    }

    /// Give the connection back for reuse. Call only once its exchange ended cleanly with nothing left
    /// unread; the pool keeps it if the endpoint's idle list has room.
    pub(crate) fn release(self) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        if pool.max_idle == 0 || !self.read_buf.is_empty() {
            return;
        }
        let UpstreamIo::Plain(stream) = self.stream else {
            // TLS connections are not pooled (see `upstream::tls`).
            return;
        };
        let mut write_buf = self.write_buf;
        write_buf.clear();
        let mut idle = pool.lock();
        let list = idle.entry(self.endpoint).or_default();
        if list.len() < pool.max_idle {
            list.push(Idle {
                stream,
                read_buf: self.read_buf,
                write_buf,
                spans: self.spans,
                fields: self.fields,
                since: Instant::now(),
            });
        }
    }
}

/// Whether an idle connection still looks usable: the upstream has neither closed it nor sent anything
/// (an idle HTTP/1.1 connection has nothing to say). Uses the readiness tokio already recorded, so the
/// common case costs no syscall; a recorded readiness is confirmed with a one-byte non-blocking read.
fn idle_is_open(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => matches!(
            stream.try_read(&mut [0u8; 1]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        ),
    }
}

impl PoolInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdleMap> {
        // Poisoning needs a panic while holding the lock; the map is consistent between statements anyway.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pop the most recently used idle connection of `endpoint` that is not expired or closed.
    fn take_idle(&self, endpoint: SocketAddr) -> Option<Idle> {
        let mut idle = self.lock();
        let list = idle.get_mut(&endpoint)?;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() < self.idle_timeout && idle_is_open(&entry.stream) {
                return Some(entry);
            }
        }
        None
    }

    fn sweep(&self) {
        let mut idle = self.lock();
        idle.retain(|_, list| {
            list.retain(|e| e.since.elapsed() < self.idle_timeout && idle_is_open(&e.stream));
            !list.is_empty()
        });
    }
}

impl Pool {
    pub(crate) fn new(config: &ProxyConfig) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                idle: Mutex::default(),
                connect_timeout: config.connect_timeout,
                idle_timeout: config.idle_timeout,
                max_idle: config.max_idle_per_endpoint,
                max_head: config.max_response_head(),
                sweeper_started: Default::default(),
            }),
        }
    }

    /// Start the task closing expired idle connections, once; it ends when the pool is dropped. Needs a
    /// tokio runtime, hence not done in `new`.
    pub(crate) fn start_sweeper(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.sweeper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let period = (self.inner.idle_timeout / 2).max(MIN_SWEEP_INTERVAL);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match weak.upgrade() {
                    Some(pool) => pool.sweep(),
                    None => return,
                }
            }
        });
    }

    /// A connection to `endpoint` ready for a request: a pooled one if any is idle, else a new one.
    async fn checkout(&self, endpoint: SocketAddr) -> Result<Pooled, ProxyError> {
        if let Some(idle) = self.inner.take_idle(endpoint) {
            return Ok(Pooled {
                stream: UpstreamIo::Plain(idle.stream),
                read_buf: idle.read_buf,
                write_buf: idle.write_buf,
                spans: idle.spans,
                fields: idle.fields,
                endpoint,
                reused: true,
                pool: Arc::downgrade(&self.inner),
            });
        }
        // Boxed: connecting is rare once connections are pooled, and inline its future would enlarge the
        // future of every request, which is moved (copied whole) at each layer it passes through.
        Box::pin(self.connect(endpoint)).await
    }

    async fn connect(&self, endpoint: SocketAddr) -> Result<Pooled, ProxyError> {
        let stream =
            match tokio::time::timeout(self.inner.connect_timeout, TcpStream::connect(endpoint))
                .await
            {
                Err(_elapsed) => return Err(ProxyError::ConnectTimeout),
                Ok(Err(err)) => return Err(ProxyError::Connect(err)),
                Ok(Ok(stream)) => stream,
            };
        // Small requests must not wait for Nagle; failure only costs latency.
        let _ = stream.set_nodelay(true);
        Ok(Pooled {
            stream: UpstreamIo::Plain(stream),
            read_buf: BytesMut::new(),
            write_buf: Vec::with_capacity(1024),
            spans: Vec::new(),
            fields: Vec::new(),
            endpoint,
            reused: false,
            pool: Arc::downgrade(&self.inner),
        })
    }

    /// [`Pool::send_on`] to the endpoint `chosen` names; if connecting to it fails (refused, unreachable,
    /// timed out: nothing of the request was sent), the failure is reported and, when `retry` allows it,
    /// the request goes to one other endpoint of the backend. `chosen` names the endpoint used.
    pub(crate) async fn send_balanced(
        &self,
        chosen: &mut Chosen,
        retry: bool,
        parts: &request::Parts,
        forwarding: &Forwarding<'_>,
        body: UpstreamBody,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let conn = match self.checkout(chosen.endpoint()).await {
            Ok(conn) => conn,
            Err(err @ (ProxyError::Connect(_) | ProxyError::ConnectTimeout)) => {
                if !chosen.connect_failed(retry) {
                    return Err(err);
                }
                self.checkout(chosen.endpoint()).await?
            }
            Err(err) => return Err(err),
        };
        // `send_on` written out: awaiting it would add one more layer that the exchange future is copied
        // through on every request.
        let endpoint = chosen.endpoint();
        let result = match upstream::exchange(
            conn,
            parts,
            forwarding,
            Some(body),
            self.inner.max_head,
        )
        .await
        {
            Attempt::Done(result) => result,
            Attempt::Retry(body) => {
                Box::pin(self.send_fresh(endpoint, parts, forwarding, body)).await?
            }
        };
        result.map_err(send_error)
    }

    /// [`Pool::send_balanced`] for a `kubernetes.io/wss` backend: a new TLS connection (SNI from the
    /// request's Host, see `upstream::tls`), never pooled; a failed TCP connect is retried the same way.
    pub(crate) async fn send_tls(
        &self,
        chosen: &mut Chosen,
        retry: bool,
        parts: &request::Parts,
        forwarding: &Forwarding<'_>,
        body: UpstreamBody,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let mut conn = match self.connect(chosen.endpoint()).await {
            Ok(conn) => conn,
            Err(err @ (ProxyError::Connect(_) | ProxyError::ConnectTimeout)) => {
                if !chosen.connect_failed(retry) {
                    return Err(err);
                }
                self.connect(chosen.endpoint()).await?
            }
            Err(err) => return Err(err),
        };
        let endpoint = chosen.endpoint();
        let UpstreamIo::Plain(tcp) = conn.stream else {
            // `connect` only makes plain connections; kept as an error rather than a panic.
            return Err(ProxyError::Upstream(std::io::Error::other(
                "upstream connection already encrypted",
            )));
        };
        let sni = tls::server_name(parts, endpoint);
        conn.stream = tls::handshake(tcp, endpoint, sni, self.inner.connect_timeout).await?;
        self.send_on(conn, endpoint, parts, forwarding, body).await
    }

    /// Send a request (head `parts`, body `body`) on `conn` (to `endpoint`) and return the response once its head has
    /// arrived; the body streams from the connection. A pooled connection that the upstream closed while it
    /// was idle (it closes without a byte of response while nothing of the request body was consumed) is
    /// replaced by a fresh one, once.
    async fn send_on(
        &self,
        conn: Pooled,
        endpoint: SocketAddr,
        parts: &request::Parts,
        forwarding: &Forwarding<'_>,
        body: UpstreamBody,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let max_head = self.inner.max_head;
        let result = match upstream::exchange(conn, parts, forwarding, Some(body), max_head).await {
            Attempt::Done(result) => result,
            // Boxed for the same reason as the connect in `checkout`: it is the rare path.
            Attempt::Retry(body) => {
                Box::pin(self.send_fresh(endpoint, parts, forwarding, body)).await?
            }
        };
        result.map_err(send_error)
    }

    /// The retry of [`Pool::send_on`]: the request again, on a new connection.
    async fn send_fresh(
        &self,
        endpoint: SocketAddr,
        parts: &request::Parts,
        forwarding: &Forwarding<'_>,
        body: Option<UpstreamBody>,
    ) -> Result<Result<Response<ResponseBody>, SendError>, ProxyError> {
        let fresh = self.connect(endpoint).await?;
        Ok(
            match upstream::exchange(fresh, parts, forwarding, body, self.inner.max_head).await {
                Attempt::Done(result) => result,
                // Only reused connections are retried; a fresh one never asks.
                Attempt::Retry(_) => Err(SendError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "upstream closed a fresh connection before responding",
                ))),
            },
        )
    }
}

/// The proxy error (and so the status) for a failed exchange.
fn send_error(err: SendError) -> ProxyError {
    match err {
        SendError::Body(RequestBodyError::TooLarge) => ProxyError::BodyTooLarge,
        SendError::Body(RequestBodyError::Client(BodyError::Malformed(why))) => {
            ProxyError::Malformed(why)
        }
        SendError::Body(
            err @ (RequestBodyError::Downstream(_) | RequestBodyError::Client(BodyError::Closed)),
        ) => ProxyError::Upstream(std::io::Error::other(err)),
        SendError::Io(err) => ProxyError::Upstream(err),
    }
}
