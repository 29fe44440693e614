//! One request: route it, rewrite it, send it upstream, stream the answer back.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use http_body::Body;
use rauta_routes::Match;
use tokio::time::{Instant, Sleep};

use crate::access_log;
use crate::balance::{self, Chosen};
use crate::body::{ClientBody, ProxyBody, UpstreamBody};
use crate::downstream::UpgradeRequest;
use crate::error::ProxyError;
use crate::grpc;
use crate::headers;
use crate::linger::Parked;
use crate::metrics::ServiceMetrics;
use crate::redirect;
use crate::server::ConnContext;
use crate::target::routing_key;

/// The Service port `appProtocol` that makes the upstream side speak HTTP/2 with prior knowledge.
const H2C: &str = "kubernetes.io/h2c";

/// How the upstream side is spoken to, from the backend's Service port `appProtocol`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Upstream {
    /// HTTP/1.1 over TCP (no `appProtocol`, `http`, `kubernetes.io/ws`, anything unknown).
    Http1,
    /// HTTP/2 with prior knowledge (`kubernetes.io/h2c`); upgrades still go over HTTP/1.1.
    H2c,
    /// HTTP/1.1 over TLS (`kubernetes.io/wss`), WebSocket upgrades included; see `upstream::tls`.
    Tls,
}

/// Serve one request (from either protocol); every outcome becomes a response, and every response is
/// counted in `rauta_requests_total`.
///
/// `timer` is the connection's own response timer (HTTP/1, one request at a time): it is re-armed for this
/// request instead of a new timer being registered and removed per request (see [`ResponseTimer`]).
///
/// A plain function returning [`handle_lingering`]'s future, not an `async fn` awaiting it: that would be
/// one more layer holding a copy-sized slot for the whole request future, moved (copied) on every request.
pub(crate) fn handle<'a>(
    conn: &'a ConnContext,
    req: Request<ClientBody>,
    timer: Pin<&'a mut Sleep>,
) -> impl Future<Output = Response<ProxyBody>> + Send + 'a {
    handle_lingering(conn, req, None, Some(timer))
}

/// [`handle`], and when the proxy answers itself, first read the rest of the request body that `parked`
/// got back (HTTP/2; see `linger` for why). Without a `timer` (HTTP/2: streams run side by side), each
/// request gets a timer of its own.
pub(crate) async fn handle_lingering(
    conn: &ConnContext,
    req: Request<ClientBody>,
    parked: Option<&Parked>,
    timer: Option<Pin<&mut Sleep>>,
) -> Response<ProxyBody> {
    let mut service: Option<Arc<ServiceMetrics>> = None;
    let access = access_log::start(conn, &req);
    let grpc = grpc::is_grpc(req.headers());
    let (response, status) = match forward(conn, req, grpc, &mut service, timer).await {
        Ok(response) => {
            let status = response.status();
            (response, status)
        }
        Err(err) => {
            tracing::debug!(client = %conn.peer, error = %err, "answered by proxy");
            if let Some(parked) = parked {
                parked.drain().await;
            }
            // A gRPC client reads the outcome from `grpc-status` (under HTTP 200); the metrics count the
            // HTTP status a non-gRPC request would have got, so proxy-side failures stay visible there.
            let response = if grpc {
                grpc::error_response(&err)
            } else {
                error_response(&err)
            };
            (response, err.status())
        }
    };
    let metrics = service
        .as_deref()
        .unwrap_or_else(|| conn.proxy.metrics.no_service());
    metrics.record(status);
    access_log::finish(access, conn, response)
}

/// Route and forward. `service` is set as soon as a backend is chosen so the caller counts the response under
/// it, whatever happens next. `grpc`: the request is a gRPC call (the caller looked once for both).
async fn forward(
    conn: &ConnContext,
    req: Request<ClientBody>,
    grpc: bool,
    service: &mut Option<Arc<ServiceMetrics>>,
    timer: Option<Pin<&mut Sleep>>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let proxy = &*conn.proxy;
    let (mut chosen, speak) = {
        let key = routing_key(&req)?;
        // The snapshot is only held while choosing: the request keeps its endpoint whatever reloads happen
        // while it is in flight, and a reload never waits for requests.
        let table = proxy.routes.load();
        let backend = match table.lookup(key.host, key.path) {
            Match::Route(route) => {
                let https = proxy.config.https_redirect_port;
                if let Some(to) = redirect::to_https(conn.scheme, https, route, key.host, req.uri())
                {
                    return Ok(to);
                }
                &route.backend
            }
            Match::DefaultBackend(backend) => backend,
            Match::NotFound => return Err(ProxyError::NoRoute),
        };
        *service = Some(proxy.metrics.service(&backend.service));
        let chosen = Chosen::new(proxy, backend, conn.peer).ok_or(ProxyError::NoEndpoints)?;
        let speak = match backend.app_protocol.as_deref() {
            Some(H2C) => Upstream::H2c,
            Some(crate::upstream::tls::WSS) => Upstream::Tls,
            _ => Upstream::Http1,
        };
        (chosen, speak)
    };

    // A declared length over the limit is refused before any upstream work (both codecs take the exact size
    // hint from Content-Length). Chunked bodies are counted while streaming by `UpstreamBody`.
    let limit = proxy.config.max_body_bytes;
    if let (Some(max), Some(len)) = (limit, req.body().size_hint().exact()) {
        if len > max {
            return Err(ProxyError::BodyTooLarge);
        }
    }

    let (mut parts, body) = req.into_parts();
    // A WebSocket upgrade keeps the two fields that ask for it (both hop-by-hop otherwise).
    let upgrade = match parts.extensions.get::<UpgradeRequest>() {
        Some(_) => parts.headers.get(header::UPGRADE).cloned(),
        None => None,
    };
    // HTTP/2 upstream for h2c backends, except for upgrades (WebSocket), which only HTTP/1.1 carries.
    let h2c = speak == Upstream::H2c && upgrade.is_none();
    // A gRPC call's own deadline replaces `response_timeout`.
    let grpc_timeout = grpc.then(|| grpc::timeout(&parts.headers)).flatten();
    // `Expect` goes too: the proxy answers `Expect: 100-continue` itself: the client codec (ours on
    // HTTP/1.1, hyper's on HTTP/2) sends 100 when the body is first read, which happens once the upstream
    // connection is ready.
    headers::strip_request_hop_by_hop(&mut parts.headers);
    if let Some(protocol) = upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol);
    }
    // HTTP/2 carries the host in `:authority`; HTTP/1.1 upstreams need it as Host (set before the
    // forwarding headers so that X-Forwarded-Host gets it too).
    if parts.version == Version::HTTP_2 && !parts.headers.contains_key(header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(header::HOST, host);
            }
        }
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        // HTTP/2 requests carry scheme and authority; HTTP/1.1 upstreams get origin-form. HTTP/1.x requests
        // reaching this point are origin-form already and pass untouched.
        let origin = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(origin);
    }
    // One clock read serves the deadline and the latency (clock reads showed up in profiles).
    let started = tokio::time::Instant::now();
    let deadline = started + grpc_timeout.unwrap_or(proxy.config.response_timeout);
    // The request's header map once the HTTP/1.1 exchange is done with it (see the end of this function).
    let mut request_fields = HeaderMap::new();
    // An HTTP/2 upstream gets the forwarding fields in the map hyper encodes; the HTTP/1.1 codec writes
    // them straight into the head it encodes.
    let response = if h2c {
        headers::add_forwarded(&mut parts.headers, &conn.client_ip, conn.scheme);
        crate::upstream::prepare_h2(&mut parts, chosen.endpoint());
        let grpc_deadline = grpc_timeout.map(|_| deadline);
        let retry = balance::idempotent(&parts.method);
        let sending = proxy
            .h2_pool
            .send(&mut chosen, retry, parts, body, limit, grpc_deadline);
        // Boxed: the HTTP/2 exchange's future is ~1.5x the HTTP/1.1 one, and inline it would enlarge this
        // function's future, which every request (of either kind) moves whole through several layers.
        let sent = tokio::time::timeout_at(deadline, Box::pin(sending)).await;
        match sent {
            // A client's own gRPC deadline is no fault of the endpoint; the proxy's timeout is.
            Err(_elapsed) if grpc_timeout.is_some() => return Err(ProxyError::ResponseTimeout),
            Err(_elapsed) => return Err(chosen.timed_out()),
            Ok(result) => chosen.settle(result)?.map(ProxyBody::upstream_h2),
        }
    } else {
        let forwarding =
            headers::Forwarding::take(&mut parts.headers, &conn.client_ip, conn.scheme);
        // `parts.version` stays the client's: the upstream codec writes HTTP/1.1 whatever it says, and reads
        // it to know whether the response head may pass through as bytes (see `upstream::exchange`).
        let body = UpstreamBody::new(body, limit);
        let retry = balance::idempotent(&parts.method);
        let sent = if speak == Upstream::Tls {
            // Boxed like the HTTP/2 exchange: a rare path must not enlarge every request's future.
            let sending = proxy
                .pool
                .send_tls(&mut chosen, retry, &parts, &forwarding, body);
            ResponseTimer::new(timer, deadline)
                .run(Box::pin(sending).as_mut())
                .await
        } else {
            // Pinned where it is built: the timer holds a pointer to it rather than a copy of the whole
            // exchange future (copies of futures between layers were a sixth of this path's instructions).
            let sending =
                pin!(proxy
                    .pool
                    .send_balanced(&mut chosen, retry, &parts, &forwarding, body));
            ResponseTimer::new(timer, deadline).run(sending).await
        };
        request_fields = std::mem::take(&mut parts.headers);
        match sent {
            Err(TimedOut) => return Err(chosen.timed_out()),
            Ok(result) => chosen.settle(result)?.map(ProxyBody::upstream),
        }
    };
    let waited = started.elapsed();
    if let Some(service) = service.as_deref() {
        service.observe_latency(waited);
    }
    let (mut parts, body) = response.into_parts();
    access_log::note_upstream(conn, &mut parts.extensions, chosen.endpoint(), waited);
    let switched = parts.status == http::StatusCode::SWITCHING_PROTOCOLS;
    let protocol = if switched {
        parts.headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    headers::strip_hop_by_hop(&mut parts.headers);
    if let Some(protocol) = protocol {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol);
    }
    // A response head passed through as bytes has an empty map that never allocated. The HTTP/1 client codec
    // keeps the response's map to parse the connection's next request head into; handing it the request's
    // map (emptied) means that head reuses this allocation instead of every request allocating a map and
    // freeing it here (two allocations, two frees and the map's drop: ~2.5 % of a request's instructions).
    if parts.headers.capacity() == 0 && request_fields.capacity() != 0 {
        request_fields.clear();
        parts.headers = request_fields;
    }
    Ok(Response::from_parts(parts, body))
}

/// The response deadline passed before the upstream's response head arrived.
struct TimedOut;

/// `response_timeout` (or a gRPC deadline) for one upstream exchange, on the connection's timer when it has
/// one.
///
/// A `tokio::time::timeout` per request registers a timer in the runtime's wheel and removes it again (a
/// lock and a wheel insert and removal each time; ~0.5% of the worker's CPU in the profile). The HTTP/1
/// connection instead keeps one `Sleep` and moves its deadline forward: tokio only updates the registered
/// entry's expiry when the new deadline is later, and re-files it in the wheel when the old slot comes up.
/// Left armed between requests, the timer costs at most one spurious wake-up per `response_timeout` of an
/// idle connection.
enum ResponseTimer<'a> {
    Shared(Pin<&'a mut Sleep>),
    Own(Instant),
}

impl<'a> ResponseTimer<'a> {
    fn new(timer: Option<Pin<&'a mut Sleep>>, deadline: Instant) -> Self {
        match timer {
            Some(mut timer) => {
                timer.as_mut().reset(deadline);
                Self::Shared(timer)
            }
            None => Self::Own(deadline),
        }
    }

    /// Await `exchange` unless the deadline passes first.
    async fn run<F: Future>(self, mut exchange: Pin<&mut F>) -> Result<F::Output, TimedOut> {
        match self {
            Self::Own(deadline) => tokio::time::timeout_at(deadline, exchange)
                .await
                .map_err(|_elapsed| TimedOut),
            Self::Shared(mut timer) => {
                poll_fn(|cx| {
                    if let Poll::Ready(out) = exchange.as_mut().poll(cx) {
                        return Poll::Ready(Ok(out));
                    }
                    timer.as_mut().poll(cx).map(|()| Err(TimedOut))
                })
                .await
            }
        }
    }
}

/// A short static text response for an error.
pub(crate) fn error_response(err: &ProxyError) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::from_static(err.body()));
    *response.status_mut() = err.status();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
