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
    ingress_class: String,
    metrics: TlsMetrics,
    /// Held by every change for its whole build-and-swap, so that an update and a new default certificate
    /// arriving together cannot undo each other.
    changing: Mutex<Changing>,
}

/// What the changes of [`TlsCertificates`] share.
#[derive(Debug)]
struct Changing {
    default: Arc<CertifiedKey>,
    /// The problems last reported, so that each is logged once per change rather than at every reload.
    reported: Vec<CertProblem>,
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
            ingress_class,
            metrics,
            changing: Mutex::new(Changing {
                default,
                reported: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Changing> {
        // Poisoning needs a panic while holding the lock; the fields are consistent between statements.
        self.changing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serve `default` for names no Ingress covers from the next handshake on (the `--default-certificate`
    /// file changed). Per-host certificates stay as they are; open connections keep their certificate.
    pub fn set_default(&self, default: CertifiedKey) {
        let mut changing = self.lock();
        changing.default = Arc::new(default);
        let store = self.store.load().with_default(changing.default.clone());
        self.store.store(Arc::new(store));
    }

    /// The serving store, for [`crate::server_config`].
    pub fn store(&self) -> Arc<ArcSwap<CertStore>> {
        self.store.clone()
    }

    /// Build a store from `inputs` and serve it from the next handshake on. New problems are logged at warn
    /// (with the Secret, the reason and the hosts on the default certificate), problems that went away at
    /// info; unchanged ones are not repeated.
    pub fn update(&self, inputs: &Inputs) {
        let mut changing = self.lock();
        let store = CertStore::build(inputs, &self.ingress_class, changing.default.clone());
        self.metrics.set(store.problems(), store.hosts_on_default());
        let reported = &mut changing.reported;
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
        assert_eq!(certs.lock().reported.len(), 1);

        certs.update(&inputs(&a.chain, &a.key));
        let text = metrics_text(&registry);
        assert!(!text.contains("rauta_tls_certificate_errors{"), "{text}");
        assert!(certs.lock().reported.is_empty());
    }

    #[test]
    fn a_new_default_keeps_the_host_certificates() {
        let default = crate::generate_default_certificate().unwrap();
        let certs = TlsCertificates::new(default, "rauta".into(), TlsMetrics::default());
        let a = leaf(&["a.example"], false);
        certs.update(&inputs(&a.chain, &a.key));
        let store = certs.store();
        let host_leaf = store.load().resolve(Some("a.example")).cert[0].clone();

        let replacement = crate::generate_default_certificate().unwrap();
        let replacement_leaf = replacement.cert[0].clone();
        certs.set_default(replacement);
        assert_eq!(
            store.load().resolve(Some("other.example")).cert[0],
            replacement_leaf
        );
        assert_eq!(store.load().resolve(Some("a.example")).cert[0], host_leaf);
        // Later updates build on the new default.
        certs.update(&inputs("broken", &a.key));
        assert_eq!(
            store.load().resolve(Some("a.example")).cert[0],
            replacement_leaf
        );
    }
}
