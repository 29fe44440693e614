//! An HTTP/1.1 echo backend for tests, the demo and benchmarks.
//!
//! Every answer carries `x-backend: NAME`. The default answer is `200` with the body
//! `NAME METHOD PATH\n`; a few special paths exist for tests (see [`handler`]):
//!
//! | path          | answer                                                              |
//! |---------------|---------------------------------------------------------------------|
//! | `/echo`       | the request body, streamed back as it arrives                       |
//! | `/bytes/N`    | N bytes of [`pattern`], streamed in chunks                          |
//! | `/delay/MS`   | the default answer after MS milliseconds                            |
//! | `/headers`    | the request headers as a JSON object (repeated names joined `", "`) |
//! | `/status/CODE`| the default body with status CODE                                   |
//!
//! The special paths also match after any prefix (`/shop/echo`); a non-numeric argument makes an ordinary path.

pub mod handler;
pub mod pattern;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Binds `addr` (port 0 picks a free port) and serves the echo backend named `name` on it.
///
/// Returns the bound address and the handle of the accept task. Aborting (or dropping the runtime of) the
/// handle stops the listener *and* every open connection: connections live in a [`JoinSet`] owned by the
/// accept task, so no connection outlives its server.
pub async fn spawn(addr: SocketAddr, name: &str) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let handle = tokio::spawn(serve(listener, name.to_owned()));
    Ok((local, handle))
}

/// Serves the echo backend named `name` on an already bound listener until the task is aborted.
///
/// Accept errors (for example running out of file descriptors) are not fatal: the loop pauses briefly and
/// goes on, as a server under load should.
pub async fn serve(listener: TcpListener, name: String) {
    let name: Arc<str> = Arc::from(name);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Small answers must leave at once; Nagle would add up to 40 ms to keep-alive requests.
                    let _ = stream.set_nodelay(true);
                    let name = Arc::clone(&name);
                    connections.spawn(async move {
                        let service = service_fn(move |req| handler::handle(Arc::clone(&name), req));
                        // A peer that resets or sends garbage ends only its own connection.
                        let _ = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
