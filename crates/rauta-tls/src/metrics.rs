//! TLS metrics. Labels are bounded by the cluster's Secrets and a fixed set of reasons.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::CertProblem;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProblemLabels {
    namespace: String,
    secret: String,
    reason: String,
}

/// `rauta_tls_certificate_errors{namespace,secret,reason}` (1 for every Secret named by an Ingress that
/// cannot be served, absent otherwise) and `rauta_tls_hosts_on_default_certificate`.
#[derive(Debug, Clone, Default)]
pub struct TlsMetrics {
    errors: Family<ProblemLabels, Gauge>,
    hosts_on_default: Gauge,
}

impl TlsMetrics {
    /// Register the series with `registry` (a default `TlsMetrics` counts without being exported; clones
    /// share the series, so a handle given away earlier reports into the registered ones).
    pub fn register(&self, registry: &mut Registry) {
        let metrics = self;
        registry.register(
            "rauta_tls_certificate_errors",
            "Secrets named by spec.tls that cannot be served (1 each), by reason; their hosts get the default certificate",
            metrics.errors.clone(),
        );
        registry.register(
            "rauta_tls_hosts_on_default_certificate",
            "TLS hosts served the default certificate (missing or broken Secret, or no secretName)",
            metrics.hosts_on_default.clone(),
        );
    }

    /// Replace the reported state with that of a new store.
    pub(crate) fn set(&self, problems: &[CertProblem], hosts_on_default: usize) {
        self.errors.clear();
        for p in problems {
            self.errors
                .get_or_create(&ProblemLabels {
                    namespace: p.namespace.clone(),
                    secret: p.secret.clone(),
                    reason: p.reason.to_owned(),
                })
                .set(1);
        }
        self.hosts_on_default
            .set(i64::try_from(hosts_on_default).unwrap_or(i64::MAX));
    }
}
