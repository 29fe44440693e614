//! Upstream HTTP/1.1 connections, kept alive and pooled per endpoint address.
//!
//! A connection is checked out for one request and goes back to the pool only when its response body has
//! been read to the end (see [`Pooled`] and `body::ProxyBody`); a connection whose response was abandoned is
//! dropped, which closes it. Idle connections expire after `idle_timeout` (checked at checkout and by a
//! periodic sweep) and at most `max_idle_per_endpoint` are kept per endpoint.
//!
//! This replaces `hyper_util`'s legacy client on the request path: it keys by `SocketAddr` (no URI
//! authority to render per request), sends origin-form targets as received, and needs no task spawn per
//! request to return a connection.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::UpstreamBody;
use crate::config::ProxyConfig;
use crate::error::ProxyError;

/// Shortest interval between idle sweeps.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// The shared pool. Cloning shares it.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    sweeper_started: std::sync::atomic::AtomicBool,
}

struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

/// A connection checked out for one request.
pub(crate) struct Pooled {
    sender: SendRequest<UpstreamBody>,
    endpoint: SocketAddr,
    /// Taken from the pool rather than freshly connected (a failed send may then be retried).
    reused: bool,
    pool: Weak<PoolInner>,
}

impl Pooled {
    /// Give the connection back for reuse. Call only once its response body has been read to the end; the
    /// pool keeps it if it is still open and the endpoint's idle list has room.
    pub(crate) fn release(self) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        if self.sender.is_closed() || pool.max_idle == 0 {
            return;
        }
        let mut idle = pool.lock();
        let list = idle.entry(self.endpoint).or_default();
        if list.len() < pool.max_idle {
            list.push(Idle {
                sender: self.sender,
                since: Instant::now(),
            });
        }
    }
}

impl PoolInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Idle>>> {
        // Poisoning needs a panic while holding the lock; the map is consistent between statements anyway.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pop the most recently used idle connection of `endpoint` that is not expired or closed.
    fn take_idle(&self, endpoint: SocketAddr) -> Option<SendRequest<UpstreamBody>> {
        let mut idle = self.lock();
        let list = idle.get_mut(&endpoint)?;
        while let Some(entry) = list.pop() {
            if !entry.sender.is_closed() && entry.since.elapsed() < self.idle_timeout {
                return Some(entry.sender);
            }
        }
        None
    }

    /// Put back a connection that is open but not yet idle (its previous exchange is finishing) at the cold
    /// end of the list, so it is tried last.
    fn put_back_cold(&self, endpoint: SocketAddr, sender: SendRequest<UpstreamBody>) {
        let mut idle = self.lock();
        let list = idle.entry(endpoint).or_default();
        if list.len() < self.max_idle {
            list.insert(
                0,
                Idle {
                    sender,
                    since: Instant::now(),
                },
            );
        }
    }

    fn sweep(&self) {
        let mut idle = self.lock();
        idle.retain(|_, list| {
            list.retain(|e| !e.sender.is_closed() && e.since.elapsed() < self.idle_timeout);
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
    pub(crate) async fn checkout(&self, endpoint: SocketAddr) -> Result<Pooled, ProxyError> {
        // Bounded: each pass removes one entry from the list or returns.
        while let Some(mut sender) = self.inner.take_idle(endpoint) {
            match poll_fn(|cx| Poll::Ready(sender.poll_ready(cx))).await {
                Poll::Ready(Ok(())) => return Ok(self.pooled(sender, endpoint, true)),
                Poll::Ready(Err(_closed)) => continue,
                Poll::Pending => {
                    // Still finishing its previous exchange (e.g. a request body the upstream did not wait
                    // for): keep it for later and connect anew rather than wait behind it.
                    self.inner.put_back_cold(endpoint, sender);
                    break;
                }
            }
        }
        let sender = self.connect(endpoint).await?;
        Ok(self.pooled(sender, endpoint, false))
    }

    fn pooled(
        &self,
        sender: SendRequest<UpstreamBody>,
        endpoint: SocketAddr,
        reused: bool,
    ) -> Pooled {
        Pooled {
            sender,
            endpoint,
            reused,
            pool: Arc::downgrade(&self.inner),
        }
    }

    async fn connect(&self, endpoint: SocketAddr) -> Result<SendRequest<UpstreamBody>, ProxyError> {
        let tcp =
            match tokio::time::timeout(self.inner.connect_timeout, TcpStream::connect(endpoint))
                .await
            {
                Err(_elapsed) => return Err(ProxyError::ConnectTimeout),
                Ok(Err(err)) => return Err(ProxyError::Connect(err)),
                Ok(Ok(tcp)) => tcp,
            };
        // Small requests must not wait for Nagle; failure only costs latency.
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(ProxyError::Upstream)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%endpoint, error = %err, "upstream connection ended with error");
            }
        });
        Ok(sender)
    }

    /// Send `req` on a connection to `endpoint`. A pooled connection that turns out to be closed before the
    /// request was written (the upstream dropped it while idle) is replaced by a fresh one, once.
    pub(crate) async fn send(
        &self,
        endpoint: SocketAddr,
        req: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Pooled), ProxyError> {
        let mut pooled = self.checkout(endpoint).await?;
        match pooled.sender.try_send_request(req).await {
            Ok(response) => Ok((response, pooled)),
            Err(mut err) => match err.take_message() {
                Some(req) if pooled.reused => {
                    let mut fresh = self.pooled(self.connect(endpoint).await?, endpoint, false);
                    let response = fresh
                        .sender
                        .send_request(req)
                        .await
                        .map_err(ProxyError::Upstream)?;
                    Ok((response, fresh))
                }
                _ => Err(ProxyError::Upstream(err.into_error())),
            },
        }
    }
}
