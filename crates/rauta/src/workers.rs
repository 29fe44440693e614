//! The serving threads: nginx's worker model in one process.
//!
//! Each worker is an OS thread running its own single-threaded tokio runtime, accepting from its own
//! `SO_REUSEPORT` listener socket (the kernel spreads new connections over the sockets) and keeping its own
//! upstream connection pool. A connection lives on the thread that accepted it from start to end, so a
//! request never crosses threads: no work-stealing, no cross-thread wake-ups, no contended pool lock. What
//! the workers share is read-mostly: the route table snapshot (`ArcSwap`) and the metric series.
//!
//! The admin server, the reload watcher and signal handling run on the separate control runtime that
//! calls [`start`], so a slow scrape or a reload never delays a request.

use std::net::TcpListener as StdTcpListener;

use rauta_proxy::{Proxy, TlsAcceptor};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::error::FatalError;

/// The running workers, as seen from the control runtime.
pub struct Workers {
    finished: mpsc::UnboundedReceiver<Finished>,
    running: usize,
}

/// A worker that stopped serving, and why.
pub struct Finished {
    /// The worker's number (its thread is named `rauta-worker-N`).
    pub index: usize,
    /// `Ok` after a requested shutdown has drained the worker's connections; the error text otherwise.
    pub result: Result<(), String>,
}

/// The HTTPS side of the workers: one listening socket per worker (same `SO_REUSEPORT` group) and the TLS
/// acceptor they share.
pub struct Https {
    /// One per worker, in the same order as the plain HTTP listeners.
    pub listeners: Vec<StdTcpListener>,
    /// The handshake (certificates by SNI, ALPN).
    pub acceptor: TlsAcceptor,
}

/// Start one worker per listener. `make_proxy` builds each worker's proxy (each gets its own upstream
/// pool); every worker stops accepting once `shutdown` turns true, then drains its connections. With
/// `https`, every worker also serves its HTTPS listener on the same thread and runtime.
///
/// Everything that can fail (runtime creation, registering a listener, spawning a thread) fails here,
/// before any worker serves, so a start-up error is reported once and nothing is left half running.
pub fn start(
    listeners: Vec<StdTcpListener>,
    https: Option<Https>,
    make_proxy: impl Fn() -> Proxy,
    shutdown: &watch::Receiver<bool>,
) -> Result<Workers, FatalError> {
    let mut prepared = Vec::with_capacity(listeners.len());
    let acceptor = https.as_ref().map(|h| h.acceptor.clone());
    let mut tls_listeners = https.map(|h| h.listeners).unwrap_or_default().into_iter();
    for listener in listeners {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(FatalError::Runtime)?;
        // A listener is bound to the IO driver of the runtime it is registered with: register it with the
        // runtime of the thread that will accept from it.
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(listener).map_err(FatalError::Runtime)?
        };
        let tls_listener = match tls_listeners.next() {
            Some(l) => {
                let _context = runtime.enter();
                Some(TcpListener::from_std(l).map_err(FatalError::Runtime)?)
            }
            None => None,
        };
        prepared.push((runtime, listener, tls_listener));
    }
    let (done_tx, finished) = mpsc::unbounded_channel();
    let running = prepared.len();
    for (index, (runtime, listener, tls_listener)) in prepared.into_iter().enumerate() {
        let proxy = make_proxy();
        let tls = tls_listener.zip(acceptor.clone());
        let shutdown = shutdown.clone();
        let report = Report {
            index,
            result: Some(Err("the worker thread panicked".to_owned())),
            tx: done_tx.clone(),
        };
        std::thread::Builder::new()
            .name(format!("rauta-worker-{index}"))
            .spawn(move || serve(runtime, proxy, listener, tls, shutdown, report))
            .map_err(FatalError::Runtime)?;
    }
    Ok(Workers { finished, running })
}

fn serve(
    runtime: tokio::runtime::Runtime,
    proxy: Proxy,
    listener: TcpListener,
    tls: Option<(TcpListener, TlsAcceptor)>,
    shutdown: watch::Receiver<bool>,
    mut report: Report,
) {
    let http = proxy.serve_http(listener, shutdown_signal(shutdown.clone()));
    let result = runtime.block_on(async {
        match tls {
            // Both listeners drain on the same signal; the worker is done when both are.
            Some((tls_listener, acceptor)) => {
                let https = proxy.serve(tls_listener, acceptor, shutdown_signal(shutdown));
                let (http, https) = tokio::join!(http, https);
                http.and(https)
            }
            None => http.await,
        }
    });
    report.result = Some(result.map_err(|error| error.to_string()));
    // Report before dropping the runtime: what it still owns (idle upstream connections, the pool sweeper)
    // is closed by the drop and needs no waiting for.
    drop(report);
    drop(runtime);
}

/// Resolves when the shutdown flag turns true (or its sender is gone).
async fn shutdown_signal(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

/// Sends the worker's outcome when dropped: also when the thread unwinds from a panic, so the control
/// runtime always learns that a worker is gone.
struct Report {
    index: usize,
    result: Option<Result<(), String>>,
    tx: mpsc::UnboundedSender<Finished>,
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(result) = self.result.take() {
            // The control runtime may already be gone (process exit after a shutdown timeout).
            let _ = self.tx.send(Finished {
                index: self.index,
                result,
            });
        }
    }
}

impl Workers {
    /// How many workers were started.
    pub fn count(&self) -> usize {
        self.running
    }

    /// Resolves when the next worker stops. Pending forever once all have stopped.
    pub async fn next_finished(&mut self) -> Finished {
        if self.running == 0 {
            return std::future::pending().await;
        }
        match self.finished.recv().await {
            Some(finished) => {
                self.running -= 1;
                finished
            }
            // Unreachable while `running > 0` (every worker reports once), but never spin on it.
            None => std::future::pending().await,
        }
    }

    /// Resolves once every worker has stopped.
    pub async fn all_finished(&mut self) {
        while self.running > 0 {
            let _ = self.next_finished().await;
        }
    }
}
