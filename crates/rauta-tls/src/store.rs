//! The certificate store: SNI name to certificate, built from the same objects as the route table.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rauta_routes::class::ClassFilter;
use rauta_routes::host::{wildcard_suffix, HostPattern};
use rauta_routes::model::{Ingress, Inputs, Secret};
use rustls::sign::CertifiedKey;

use crate::secret::{certified_key_from_secret, SecretError};

/// A Secret named by an Ingress that cannot be served, and the hosts that get the default certificate
/// because of it. Ordered so that a set of problems compares cheaply between reloads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CertProblem {
    /// Namespace of the Secret (the Ingress's own).
    pub namespace: String,
    /// Name of the Secret.
    pub secret: String,
    /// Stable label, see [`SecretError::reason`].
    pub reason: &'static str,
    /// The full message.
    pub detail: String,
    /// Hosts (as written in `spec.tls[].hosts`, lowercased) served the default certificate instead.
    pub hosts: Vec<String>,
}

/// An immutable SNI → certificate map. Built whole and swapped whole (see [`crate::TlsCertificates`]).
#[derive(Debug)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    problems: Vec<CertProblem>,
    hosts_on_default: usize,
}

impl CertStore {
    /// A store that serves `default` for every name.
    pub fn only_default(default: Arc<CertifiedKey>) -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default,
            problems: Vec::new(),
            hosts_on_default: 0,
        }
    }

    /// Build the store from the Ingresses of `ingress_class` in `inputs` and the Secrets they name.
    ///
    /// Each `spec.tls` entry maps its hosts (or, with no hosts, every host of the Ingress's rules) to its
    /// Secret in the Ingress's namespace. When two Ingresses name different Secrets for one host, the older
    /// Ingress wins (as for routes). Hosts whose Secret is missing or broken, and hosts of an entry without
    /// `secretName`, get `default`; broken Secrets are listed in [`CertStore::problems`].
    pub fn build(inputs: &Inputs, ingress_class: &str, default: Arc<CertifiedKey>) -> Self {
        let filter = ClassFilter::new(ingress_class, &inputs.ingress_classes);
        let mut ours: Vec<&Ingress> = inputs.ingresses.iter().filter(|i| filter.owns(i)).collect();
        ours.sort_by(|a, b| age_key(a).cmp(&age_key(b)));
        let secrets: HashMap<(&str, &str), &Secret> = inputs
            .secrets
            .iter()
            .map(|s| ((s.metadata.namespace(), s.metadata.name.as_str()), s))
            .collect();

        let mut store = Self::only_default(default);
        // Each Secret is decoded once however many hosts name it.
        let mut decoded: HashMap<(String, String), Result<Arc<CertifiedKey>, SecretError>> =
            HashMap::new();
        let mut broken: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
        let mut on_default: BTreeSet<HostPattern> = BTreeSet::new();
        let mut claimed: BTreeSet<HostPattern> = BTreeSet::new();
        for ingress in ours {
            let namespace = ingress.metadata.namespace();
            for tls in &ingress.spec.tls {
                let hosts = tls_hosts(ingress, &tls.hosts);
                let secret = tls.secret_name.as_deref().filter(|s| !s.is_empty());
                for host in hosts {
                    // Oldest Ingress first: a later claim of the same host is ignored.
                    if !claimed.insert(host.clone()) {
                        continue;
                    }
                    let Some(name) = secret else {
                        on_default.insert(host);
                        continue;
                    };
                    let key = (namespace.to_owned(), name.to_owned());
                    let result = decoded.entry(key.clone()).or_insert_with(|| {
                        match secrets.get(&(namespace, name)) {
                            Some(secret) => certified_key_from_secret(secret).map(Arc::new),
                            None => Err(SecretError::NotFound),
                        }
                    });
                    match result {
                        Ok(cert) => store.insert(host, cert.clone()),
                        Err(_) => {
                            broken.entry(key).or_default().insert(host.to_host_string());
                            on_default.insert(host);
                        }
                    }
                }
            }
        }
        for ((namespace, secret), hosts) in broken {
            if let Some(Err(error)) = decoded.get(&(namespace.clone(), secret.clone())) {
                store.problems.push(CertProblem {
                    namespace,
                    secret,
                    reason: error.reason(),
                    detail: error.to_string(),
                    hosts: hosts.into_iter().collect(),
                });
            }
        }
        store.problems.sort();
        store.hosts_on_default = on_default.len();
        store
    }

    fn insert(&mut self, host: HostPattern, cert: Arc<CertifiedKey>) {
        match host {
            HostPattern::Exact(h) => self.exact.insert(h, cert),
            HostPattern::Wildcard(suffix) => self.wildcard.insert(suffix, cert),
        };
    }

    /// The certificate for an SNI name: exact host, else a one-label wildcard, else the default. No SNI (a
    /// client connecting by IP address) gets the default.
    pub fn resolve(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        self.find(server_name).unwrap_or(&self.default).clone()
    }

    fn find(&self, server_name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let name = server_name?.trim_end_matches('.').to_ascii_lowercase();
        if let Some(cert) = self.exact.get(&name) {
            return Some(cert);
        }
        self.wildcard.get(wildcard_suffix(&name)?)
    }

    /// The same store with another default certificate (the per-host certificates are shared, not copied).
    pub fn with_default(&self, default: Arc<CertifiedKey>) -> Self {
        Self {
            exact: self.exact.clone(),
            wildcard: self.wildcard.clone(),
            default,
            problems: self.problems.clone(),
            hosts_on_default: self.hosts_on_default,
        }
    }

    /// The default certificate.
    pub fn default_certificate(&self) -> &Arc<CertifiedKey> {
        &self.default
    }

    /// The Secrets that could not be served, sorted.
    pub fn problems(&self) -> &[CertProblem] {
        &self.problems
    }

    /// How many TLS hosts are served the default certificate (broken or missing Secret, or no
    /// `secretName`).
    pub fn hosts_on_default(&self) -> usize {
        self.hosts_on_default
    }
}

/// The hosts of a `spec.tls` entry; with none listed, every host of the Ingress's rules. Invalid hosts are
/// skipped (the route compiler reports them).
fn tls_hosts(ingress: &Ingress, listed: &[String]) -> Vec<HostPattern> {
    let hosts: Vec<&str> = if listed.is_empty() {
        ingress
            .spec
            .rules
            .iter()
            .filter_map(|r| r.host.as_deref())
            .collect()
    } else {
        listed.iter().map(String::as_str).collect()
    };
    hosts
        .into_iter()
        .filter(|h| !h.is_empty())
        .filter_map(|h| HostPattern::parse(h).ok())
        .collect()
}

/// Oldest first, as the route compiler orders Ingresses: RFC 3339 timestamps sort as strings, a missing one
/// sorts last, then namespace and name.
fn age_key(ingress: &Ingress) -> (bool, &str, &str, &str) {
    let ts = ingress
        .metadata
        .creation_timestamp
        .as_deref()
        .filter(|t| !t.is_empty());
    (
        ts.is_none(),
        ts.unwrap_or(""),
        ingress.metadata.namespace(),
        &ingress.metadata.name,
    )
}

#[cfg(test)]
mod tests {
    use rauta_routes::model::{IngressRule, IngressSpec, IngressTls, ObjectMeta};

    use super::*;
    use crate::test_certs::{leaf, secret};

    fn ingress(name: &str, ts: &str, tls: &[(&[&str], Option<&str>)], rules: &[&str]) -> Ingress {
        Ingress {
            metadata: ObjectMeta {
                name: name.into(),
                creation_timestamp: Some(ts.into()),
                ..Default::default()
            },
            spec: IngressSpec {
                ingress_class_name: Some("rauta".into()),
                tls: tls
                    .iter()
                    .map(|(hosts, s)| IngressTls {
                        hosts: hosts.iter().map(|h| h.to_string()).collect(),
                        secret_name: s.map(str::to_owned),
                    })
                    .collect(),
                rules: rules
                    .iter()
                    .map(|h| IngressRule {
                        host: Some(h.to_string()),
                        http: None,
                    })
                    .collect(),
                ..Default::default()
            },
        }
    }

    fn default_cert() -> Arc<CertifiedKey> {
        Arc::new(crate::generate_default_certificate().unwrap())
    }

    fn same(a: &Arc<CertifiedKey>, b: &Arc<CertifiedKey>) -> bool {
        a.cert[0] == b.cert[0]
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_default() {
        let a = leaf(&["a.example"], false);
        let w = leaf(&["*.wild.example"], true);
        let inputs = Inputs {
            ingresses: vec![ingress(
                "i",
                "2024-01-01T00:00:00Z",
                &[
                    (&["A.example"], Some("a")),
                    (&["*.wild.example"], Some("w")),
                ],
                &[],
            )],
            secrets: vec![secret("a", &a.chain, &a.key), secret("w", &w.chain, &w.key)],
            ..Default::default()
        };
        let default = default_cert();
        let store = CertStore::build(&inputs, "rauta", default.clone());
        let leaf_of = |name: Option<&str>| store.resolve(name).cert[0].clone();
        assert_eq!(leaf_of(Some("a.example")).as_ref(), a_der(&a).as_slice());
        assert_eq!(leaf_of(Some("A.EXAMPLE.")).as_ref(), a_der(&a).as_slice());
        assert_eq!(
            leaf_of(Some("x.wild.example")).as_ref(),
            a_der(&w).as_slice()
        );
        for other in [
            Some("y.x.wild.example"),
            Some("wild.example"),
            Some("b.example"),
            None,
        ] {
            assert!(same(&store.resolve(other), &default), "{other:?}");
        }
        assert!(store.problems().is_empty());
        assert_eq!(store.hosts_on_default(), 0);
    }

    fn a_der(l: &crate::test_certs::Leaf) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::pem_slice_iter(l.chain.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn broken_and_missing_secrets_fall_back_without_touching_others() {
        let good = leaf(&["good.example"], false);
        let inputs = Inputs {
            ingresses: vec![ingress(
                "i",
                "2024-01-01T00:00:00Z",
                &[
                    (&["good.example"], Some("good")),
                    (&["bad.example", "bad2.example"], Some("bad")),
                    (&["gone.example"], Some("gone")),
                    (&["nosecret.example"], None),
                ],
                &[],
            )],
            secrets: vec![
                secret("good", &good.chain, &good.key),
                secret("bad", "garbage", &good.key),
            ],
            ..Default::default()
        };
        let default = default_cert();
        let store = CertStore::build(&inputs, "rauta", default.clone());
        assert!(!same(&store.resolve(Some("good.example")), &default));
        for host in [
            "bad.example",
            "bad2.example",
            "gone.example",
            "nosecret.example",
        ] {
            assert!(same(&store.resolve(Some(host)), &default), "{host}");
        }
        let problems: Vec<_> = store
            .problems()
            .iter()
            .map(|p| (p.secret.as_str(), p.reason, p.hosts.join(",")))
            .collect();
        assert_eq!(
            problems,
            [
                (
                    "bad",
                    "bad_certificate",
                    "bad.example,bad2.example".to_owned()
                ),
                ("gone", "not_found", "gone.example".to_owned())
            ]
        );
        assert_eq!(store.hosts_on_default(), 4);
    }

    #[test]
    fn empty_hosts_cover_the_rules_and_the_older_ingress_wins() {
        let old = leaf(&["h.example"], false);
        let new = leaf(&["h.example"], false);
        let inputs = Inputs {
            ingresses: vec![
                ingress(
                    "new",
                    "2024-02-01T00:00:00Z",
                    &[(&["h.example"], Some("new"))],
                    &[],
                ),
                ingress(
                    "old",
                    "2024-01-01T00:00:00Z",
                    &[(&[], Some("old"))],
                    &["h.example"],
                ),
                {
                    let mut other = ingress(
                        "other",
                        "2023-01-01T00:00:00Z",
                        &[(&["h.example"], Some("new"))],
                        &[],
                    );
                    other.spec.ingress_class_name = Some("nginx".into());
                    other
                },
            ],
            secrets: vec![
                secret("old", &old.chain, &old.key),
                secret("new", &new.chain, &new.key),
            ],
            ..Default::default()
        };
        let store = CertStore::build(&inputs, "rauta", default_cert());
        assert_eq!(
            store.resolve(Some("h.example")).cert[0].as_ref(),
            a_der(&old).as_slice()
        );
    }
}
