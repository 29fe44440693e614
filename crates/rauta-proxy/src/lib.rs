//! Tier 3: the userspace HTTP reverse proxy (tokio; its own HTTP/1.1 codecs on both sides, hyper for HTTP/2).
//!
//! Every request is routed by the current [`rauta_routes::RouteTable`] snapshot (Host header and path), sent
//! to the endpoint Maglev picks for the client address (over the healthy endpoints when
//! [`ProxyConfig::health`] is set; an idempotent request whose connect fails is then sent once to another
//! endpoint), and streamed both ways without buffering whole bodies. The proxy answers these itself, each with a short static text body:
//!
//! | status | when |
//! | --- | --- |
//! | 400 | target not origin-form (absolute, authority or asterisk form); missing, repeated or invalid Host on HTTP/1.1; malformed head; Content-Length with Transfer-Encoding, Transfer-Encoding on HTTP/1.0 or not ending in `chunked`, an invalid or conflicting Content-Length; a malformed chunked body (if no response started) |
//! | 405 | CONNECT |
//! | 404 | no route and no default backend |
//! | 503 | the backend has no ready endpoint |
//! | 413 | body over `max_body_bytes` (declared: before connecting upstream; chunked: when the limit trips, if no response started) |
//! | 431 | request head over `max_header_bytes` or more than `max_headers` headers |
//! | 502 | connect refused, unreachable or timed out; upstream connection failed; invalid or oversized response head |
//! | 504 | no response head within `response_timeout` |
//!
//! A gRPC request (`content-type: application/grpc*`) gets these failures as a gRPC status instead: HTTP 200
//! with a trailers-only answer (`grpc-status`, `grpc-message`): no route → UNIMPLEMENTED (12), no endpoint,
//! connect or upstream failure → UNAVAILABLE (14), timeout → DEADLINE_EXCEEDED (4), body too large →
//! RESOURCE_EXHAUSTED (8), malformed → INTERNAL (13). Its `grpc-timeout`, when present, replaces
//! `response_timeout` and bounds the whole response (a body still streaming at the deadline ends with
//! DEADLINE_EXCEEDED trailers). `rauta_requests_total` counts such answers under the HTTP status above.
//!
//! Answers to a malformed head (400, 431) close the connection. Client connections speak HTTP/1.x through the
//! proxy's own codec (`downstream`: keep-alive, pipelining answered in order, `Expect: 100-continue`,
//! WebSocket upgrades tunnelled after the backend's 101), or HTTP/2 through hyper when the client opens with
//! the HTTP/2 preface (h2c with prior knowledge) or the acceptor negotiated `h2`. Upstream connections are
//! pooled per endpoint address and kept alive; the upstream side speaks HTTP/1.1 through the proxy's own codec
//! (`upstream`), on the request's own task, or HTTP/2 with prior knowledge (hyper's client, one multiplexed
//! connection per endpoint) when the Service port's `appProtocol` is `kubernetes.io/h2c` (WebSocket upgrades
//! always go over HTTP/1.1), or HTTP/1.1 over TLS, on a connection per request, when it is
//! `kubernetes.io/wss` (SNI from the Host, certificate not verified; see `upstream::tls`). A failed
//! handshake with such a backend answers 502. Requests lose hop-by-hop headers and
//! gain `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Real-IP`; the Host header passes
//! unchanged; responses lose hop-by-hop headers. Trailers pass in both directions.
//!
//! ```no_run
//! # async fn run(routes: std::sync::Arc<arc_swap::ArcSwap<rauta_routes::RouteTable>>) -> std::io::Result<()> {
//! use rauta_proxy::{bind_listener, Proxy, ProxyConfig, ProxyMetrics};
//! let mut registry = prometheus_client::registry::Registry::default();
//! let proxy = Proxy::new(ProxyConfig::default(), routes, ProxyMetrics::register(&mut registry));
//! let listener = bind_listener("0.0.0.0:8080".parse().unwrap())?;
//! proxy.serve_http(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

#![forbid(unsafe_code)]

mod access_log;
mod balance;
mod body;
mod config;
mod downstream;
mod error;
mod forward;
mod grpc;
mod headers;
mod linger;
mod listener;
mod metrics;
mod pool;
mod redirect;
mod server;
mod target;
mod tls;
mod upstream;

pub use access_log::AccessLogFormat;
pub use config::ProxyConfig;
pub use error::ProxyError;
pub use listener::{bind_listener, bind_listener_group, Acceptor, PlainTcp, Scheme};
pub use metrics::ProxyMetrics;
pub use server::Proxy;
pub use tls::{TlsAcceptor, DEFAULT_HANDSHAKE_TIMEOUT};
pub use tokio_rustls::rustls;
