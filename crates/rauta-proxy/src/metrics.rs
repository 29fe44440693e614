//! Prometheus metrics of the userspace tier. Labels are bounded: a tier, a status class and the Service port
//! (`namespace/name:port`, or `none` for requests that matched no backend) — never hosts, paths or endpoints.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rauta_routes::{PortRef, ServiceRef};

use crate::pool::FastHasher;

/// The `tier` label value of every request counted here.
const TIER: &str = "3";
/// Status classes in index order; `1xx` only for informational finals such as 101.
const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// The `service` label of requests answered before a backend was chosen.
const NO_SERVICE: &str = "none";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    tier: &'static str,
    code_class: &'static str,
    service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

type LatencyFamily = Family<ServiceLabels, Histogram, fn() -> Histogram>;
type ServiceMap = HashMap<ServiceRef, Arc<ServiceMetrics>, BuildHasherDefault<FastHasher>>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

/// The metrics of one Service port, resolved once and then updated without label formatting or hashing of
/// label sets on the request path.
#[derive(Debug)]
pub(crate) struct ServiceMetrics {
    requests: [Counter; 5],
    latency: Histogram,
}

impl ServiceMetrics {
    /// Count a response by its status class.
    pub(crate) fn record(&self, status: StatusCode) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.requests[class].inc();
    }

    /// Record the time from dispatch to the upstream's response head.
    pub(crate) fn observe_latency(&self, elapsed: Duration) {
        self.latency.observe(elapsed.as_secs_f64());
    }
}

/// The proxy's metrics. Cheap to clone: every handle shares the registered series.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    open_connections: Gauge,
    /// Per-Service handles; grows with the number of Service ports ever routed to (bounded by the cluster).
    /// Looked up on every request, so hashed with [`FastHasher`] (the keys come from the cluster).
    services: Arc<RwLock<ServiceMap>>,
    none: Arc<ServiceMetrics>,
}

impl ProxyMetrics {
    /// Create the metrics and register them:
    /// `rauta_requests_total{tier,code_class,service}`, `rauta_upstream_latency_seconds{service}` (time to the
    /// upstream response head) and `rauta_open_connections` (client connections being served).
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        let open_connections = Gauge::default();
        registry.register(
            "rauta_requests",
            "Requests answered, by tier, status class and Service",
            requests.clone(),
        );
        registry.register(
            "rauta_upstream_latency_seconds",
            "Time from sending a request upstream to receiving its response head",
            latency.clone(),
        );
        registry.register(
            "rauta_open_connections",
            "Client connections being served by the proxy",
            open_connections.clone(),
        );
        let none = Arc::new(Self::resolve(&requests, &latency, NO_SERVICE.to_owned()));
        Self {
            requests,
            latency,
            open_connections,
            services: Arc::default(),
            none,
        }
    }

    /// Metrics that are not registered anywhere (tests, benchmarks).
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    fn resolve(
        requests: &Family<RequestLabels, Counter>,
        latency: &LatencyFamily,
        service: String,
    ) -> ServiceMetrics {
        let requests = CODE_CLASSES.map(|code_class| {
            requests
                .get_or_create(&RequestLabels {
                    tier: TIER,
                    code_class,
                    service: service.clone(),
                })
                .clone()
        });
        let latency = latency.get_or_create(&ServiceLabels { service }).clone();
        ServiceMetrics { requests, latency }
    }

    /// The `rauta_requests_total` counter of requests another tier served without this proxy (`tier` =
    /// `"1"` for the kernel's splices) with the status class `code_class` (`"2xx"`...; `"unknown"` for
    /// responses the kernel did not read) and `service="kernel"` (it counts per tier, not per Service
    /// yet). The caller keeps it in step with the kernel's own counter.
    pub fn kernel_tier_requests(&self, tier: &'static str, code_class: &'static str) -> Counter {
        self.requests
            .get_or_create(&RequestLabels {
                tier,
                code_class,
                service: "kernel".to_owned(),
            })
            .clone()
    }

    /// The handles of one Service port, created on first use.
    pub(crate) fn service(&self, service: &ServiceRef) -> Arc<ServiceMetrics> {
        // A poisoned lock only means another thread panicked mid-insert of a complete entry; the map is fine.
        if let Some(found) = self
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(service)
        {
            return found.clone();
        }
        let mut map = self.services.write().unwrap_or_else(|e| e.into_inner());
        map.entry(service.clone())
            .or_insert_with(|| {
                Arc::new(Self::resolve(
                    &self.requests,
                    &self.latency,
                    service_label(service),
                ))
            })
            .clone()
    }

    /// The handles for requests answered before a backend was chosen.
    pub(crate) fn no_service(&self) -> &ServiceMetrics {
        &self.none
    }

    /// Count a client connection as open until the guard drops.
    pub(crate) fn open_connection(&self) -> OpenConnection {
        self.open_connections.inc();
        OpenConnection(self.open_connections.clone())
    }
}

/// Decrements `rauta_open_connections` when dropped, however the connection task ends.
pub(crate) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `namespace/name:port` with the port number or name.
fn service_label(service: &ServiceRef) -> String {
    match &service.port {
        PortRef::Number(n) => format!("{}/{}:{}", service.namespace, service.name, n),
        PortRef::Name(n) => format!("{}/{}:{}", service.namespace, service.name, n),
    }
}
