//! The serving certificate store and what changes it: build from objects, swap, report what changed.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rauta_routes::model::Inputs;
use rustls::sign::CertifiedKey;

use crate::metrics::TlsMetrics;
use crate::store::{CertProblem, CertStore};

/// The certificates being served. Shared by the HTTPS listener (through [`crate::server_config`] on
/// [`TlsCertificates::store`]) and whatever reloads the configuration.
#[derive(Debug)]
pub struct TlsCertificates {
    store: Arc<ArcSwap<CertStore>>,
    default: Arc<CertifiedKey>,
    ingress_class: String,
    metrics: TlsMetrics,
    /// The problems last reported, so that each is logged once per change rather than at every reload.
    reported: Mutex<Vec<CertProblem>>,
}

impl TlsCertificates {
    /// Certificates for the Ingresses of `ingress_class`, with `default` for unmatched names. Serves only the
    /// default until the first [`TlsCertificates::update`].
    pub fn new(default: CertifiedKey, ingress_class: String, metrics: TlsMetrics) -> Self {
        let default = Arc::new(default);
        Self {
            store: Arc::new(ArcSwap::from_pointee(CertStore::only_default(
                default.clone(),
            ))),
            default,
            ingress_class,
            metrics,
            reported: Mutex::new(Vec::new()),
        }
    }

    /// The serving store, for [`crate::server_config`].
    pub fn store(&self) -> Arc<ArcSwap<CertStore>> {
        self.store.clone()
    }

    /// Build a store from `inputs` and serve it from the next handshake on. New problems are logged at warn
    /// (with the Secret, the reason and the hosts on the default certificate), problems that went away at
    /// info; unchanged ones are not repeated.
    pub fn update(&self, inputs: &Inputs) {
        let store = CertStore::build(inputs, &self.ingress_class, self.default.clone());
        self.metrics.set(store.problems(), store.hosts_on_default());
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        for p in store.problems() {
            if !reported.contains(p) {
                tracing::warn!(
                    secret = %format!("{}/{}", p.namespace, p.secret),
                    reason = p.reason,
                    hosts = %p.hosts.join(","),
                    "TLS secret cannot be used ({}); its hosts get the default certificate",
                    p.detail
                );
            }
        }
        for p in reported.iter() {
            if !store.problems().contains(p) {
                tracing::info!(
                    secret = %format!("{}/{}", p.namespace, p.secret),
                    "TLS secret problem resolved ({})",
                    p.reason
                );
            }
        }
        *reported = store.problems().to_vec();
        drop(reported);
        self.store.store(Arc::new(store));
    }
}
