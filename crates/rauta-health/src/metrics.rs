//! Health metrics. Labels are bounded: `service` is a Service port (`namespace/name:port`) and `endpoint`
//! one of its current endpoints; series of endpoints that left the table are removed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `{service, endpoint}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndpointLabels {
    pub(crate) service: String,
    pub(crate) endpoint: String,
}

/// `{service}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServiceLabels {
    pub(crate) service: String,
}

/// The health metrics; clones share the series.
#[derive(Debug, Clone, Default)]
pub(crate) struct HealthMetrics {
    pub(crate) healthy: Family<EndpointLabels, Gauge>,
    pub(crate) ejections: Family<ServiceLabels, Counter>,
    pub(crate) retries: Family<ServiceLabels, Counter>,
    pub(crate) fail_open: Family<ServiceLabels, Gauge>,
}

impl HealthMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "rauta_endpoint_healthy",
            "1 if the endpoint takes new requests (active checks pass, not ejected), else 0",
            self.healthy.clone(),
        );
        registry.register(
            "rauta_endpoint_ejections",
            "Endpoints ejected by outlier detection (consecutive failed requests or failed probes back)",
            self.ejections.clone(),
        );
        registry.register(
            "rauta_upstream_retries",
            "Requests sent to a second endpoint after a connect failure",
            self.retries.clone(),
        );
        registry.register(
            "rauta_backend_fail_open",
            "1 while every endpoint of the backend is unhealthy and all of them are used anyway",
            self.fail_open.clone(),
        );
    }
}
