//! The admin listener: `/metrics`, `/healthz`, `/readyz` and `/routes`.
//!
//! Deliberately small: HTTP/1.1 only, GET/HEAD only, no bodies read. It shares nothing with the proxy's
//! listener so that a saturated proxy still answers probes.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use rauta_routes::RouteTable;
use tokio::net::TcpListener;

/// The OpenMetrics text exposition type that `prometheus_client::encoding::text` produces.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the admin endpoints read.
pub struct AdminState {
    /// Every metric of the process; registration is finished before the listener starts.
    pub registry: Registry,
    /// The serving table.
    pub table: Arc<ArcSwap<RouteTable>>,
    /// The kernel tiers, if loaded (for `/routes`' `inKernel`).
    pub kernel: Option<Arc<crate::kernel::KernelState>>,
    /// True once the first table is loaded and the proxy listener is bound; false again while shutting down.
    pub ready: Arc<AtomicBool>,
}

/// Serve admin requests on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Accept errors (EMFILE, ECONNABORTED) are transient; back off instead of spinning.
                tracing::warn!(%error, "admin listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, &request)) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "admin connection ended with an error");
            }
        });
    }
}

/// Answer one admin request.
pub fn respond(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    respond_to(state, request.method(), request.uri().path())
}

fn respond_to(state: &AdminState, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz" | "/routes");
    if !known {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/metrics" => {
            if let Some(kernel) = &state.kernel {
                kernel.sync_request_counters();
            }
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
                Ok(()) => with_type(StatusCode::OK, OPENMETRICS_CONTENT_TYPE, body),
                Err(error) => {
                    tracing::error!(%error, "cannot encode metrics");
                    text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n")
                }
            }
        }
        _ => {
            let table = state.table.load();
            let json = crate::routes_view::to_json_with_kernel(&table, state.kernel.as_deref());
            match serde_json::to_string_pretty(&json) {
                Ok(mut body) => {
                    body.push('\n');
                    with_type(StatusCode::OK, "application/json", body)
                }
                Err(error) => {
                    tracing::error!(%error, "cannot encode routes");
                    text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode routes\n")
                }
            }
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(status, "text/plain; charset=utf-8", body)
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn state(ready: bool) -> AdminState {
        AdminState {
            registry: Registry::default(),
            table: Arc::new(ArcSwap::from_pointee(RouteTable::default())),
            kernel: None,
            ready: Arc::new(AtomicBool::new(ready)),
        }
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn readiness_follows_the_flag() {
        assert_eq!(
            respond_to(&state(false), &Method::GET, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            respond_to(&state(true), &Method::GET, "/readyz").status(),
            StatusCode::OK
        );
        let health = respond_to(&state(false), &Method::GET, "/healthz");
        assert_eq!(health.status(), StatusCode::OK);
        assert_eq!(body(health).await, "ok\n");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        assert_eq!(
            respond_to(&state(true), &Method::GET, "/nope").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond_to(&state(true), &Method::POST, "/metrics").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn metrics_use_the_openmetrics_type() {
        let response = respond_to(&state(true), &Method::GET, "/metrics");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            OPENMETRICS_CONTENT_TYPE
        );
        assert!(body(response).await.ends_with("# EOF\n"));
    }
}
