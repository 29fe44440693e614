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

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;
    use rauta_routes::model::{Ingress, IngressSpec, IngressTls, ObjectMeta};

    use super::*;
    use crate::test_certs::{leaf, secret};

    fn metrics_text(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    fn inputs(crt: &str, key: &str) -> Inputs {
        Inputs {
            ingresses: vec![Ingress {
                metadata: ObjectMeta {
                    name: "i".into(),
                    ..Default::default()
                },
                spec: IngressSpec {
                    ingress_class_name: Some("rauta".into()),
                    tls: vec![IngressTls {
                        hosts: vec!["a.example".into()],
                        secret_name: Some("a".into()),
                    }],
                    ..Default::default()
                },
            }],
            secrets: vec![secret("a", crt, key)],
            ..Default::default()
        }
    }

    #[test]
    fn updates_swap_the_store_and_the_metrics_follow_the_problems() {
        let mut registry = Registry::default();
        let metrics = TlsMetrics::default();
        metrics.register(&mut registry);
        let default = crate::generate_default_certificate().unwrap();
        let default_leaf = default.cert[0].clone();
        let certs = TlsCertificates::new(default, "rauta".into(), metrics);
        let store = certs.store();
        assert_eq!(
            store.load().resolve(Some("a.example")).cert[0],
            default_leaf
        );

        let a = leaf(&["a.example"], false);
        certs.update(&inputs(&a.chain, &a.key));
        assert_ne!(
            store.load().resolve(Some("a.example")).cert[0],
            default_leaf
        );
        assert!(metrics_text(&registry).contains("rauta_tls_hosts_on_default_certificate 0"));

        let broken = inputs("not a certificate", &a.key);
        certs.update(&broken);
        // The handle taken before the updates sees the new store: it is one shared ArcSwap.
        assert_eq!(
            store.load().resolve(Some("a.example")).cert[0],
            default_leaf
        );
        let text = metrics_text(&registry);
        assert!(
            text.contains(
                "rauta_tls_certificate_errors{namespace=\"default\",secret=\"a\",reason=\"bad_certificate\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("rauta_tls_hosts_on_default_certificate 1"),
            "{text}"
        );
        // The same problem again is not "new": it stays reported once.
        certs.update(&broken);
        assert_eq!(certs.reported.lock().unwrap().len(), 1);

        certs.update(&inputs(&a.chain, &a.key));
        let text = metrics_text(&registry);
        assert!(!text.contains("rauta_tls_certificate_errors{"), "{text}");
        assert!(certs.reported.lock().unwrap().is_empty());
    }
}
