//! Health-aware endpoint choice for one request: the pick from `rauta-health`'s table of healthy
//! endpoints, the report of how the request went, and the one retry after a connect failure.
//!
//! Without a [`rauta_health::Health`] in the config (tests, benchmarks) the backend's own Maglev table is
//! used and nothing is reported.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Response};
use rauta_health::{Outcome, Pick};
use rauta_routes::Backend;

use crate::error::ProxyError;
use crate::server::ProxyInner;

/// The endpoint chosen for a request.
pub(crate) struct Chosen {
    endpoint: SocketAddr,
    pick: Option<Pick>,
}

impl Chosen {
    /// The endpoint for `client` on `backend`, or `None` if the backend has no endpoint.
    #[inline]
    pub(crate) fn new(
        proxy: &ProxyInner,
        backend: &Arc<Backend>,
        client: SocketAddr,
    ) -> Option<Self> {
        match &proxy.config.health {
            Some(health) => {
                let pick = health.pick(backend, client)?;
                Some(Self {
                    endpoint: pick.endpoint,
                    pick: Some(pick),
                })
            }
            None => Some(Self {
                endpoint: backend.pick(client)?,
                pick: None,
            }),
        }
    }

    /// The endpoint to send to (after a retry: the second one).
    #[inline]
    pub(crate) fn endpoint(&self) -> SocketAddr {
        self.endpoint
    }

    /// Count a failed connect against the endpoint and, if `retry` allows it, move to another endpoint of
    /// the backend. Returns whether there is one to try.
    pub(crate) fn connect_failed(&mut self, retry: bool) -> bool {
        let Some(pick) = &self.pick else {
            return false;
        };
        pick.report(Outcome::Failure);
        let Some(next) = retry.then(|| pick.retry()).flatten() else {
            return false;
        };
        tracing::debug!(from = %self.endpoint, to = %next.endpoint, "connect failed; retrying on another endpoint");
        self.endpoint = next.endpoint;
        self.pick = Some(next);
        true
    }

    /// The proxy's own response timeout passed waiting for the endpoint's answer: that counts against the
    /// endpoint like a 5xx (a hung backend is as unhealthy as a failing one). Returns the error to answer.
    pub(crate) fn timed_out(&self) -> ProxyError {
        if let Some(pick) = &self.pick {
            pick.report(Outcome::Failure);
        }
        ProxyError::ResponseTimeout
    }

    /// Report how the exchange went (an upstream failure or a 5xx answer counts against the endpoint;
    /// errors of the client's own making do not) and pass the result on.
    #[inline]
    pub(crate) fn settle<B>(
        &self,
        result: Result<Response<B>, ProxyError>,
    ) -> Result<Response<B>, ProxyError> {
        if let Some(pick) = &self.pick {
            match &result {
                Ok(response) if response.status().is_server_error() => {
                    pick.report(Outcome::Failure)
                }
                Ok(_) => pick.report(Outcome::Success),
                Err(
                    ProxyError::Connect(_) | ProxyError::ConnectTimeout | ProxyError::Upstream(_),
                ) => pick.report(Outcome::Failure),
                Err(_) => {}
            }
        }
        result
    }
}

/// Methods a request may be repeated with (RFC 9110 §9.2.2): only these are retried on another endpoint,
/// and only after a failed connect, when nothing of the request was sent.
pub(crate) fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_methods_are_retried() {
        for m in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"] {
            assert!(
                idempotent(&Method::from_bytes(m.as_bytes()).unwrap()),
                "{m}"
            );
        }
        for m in ["POST", "PATCH", "CONNECT", "PROPFIND"] {
            assert!(
                !idempotent(&Method::from_bytes(m.as_bytes()).unwrap()),
                "{m}"
            );
        }
    }
}
