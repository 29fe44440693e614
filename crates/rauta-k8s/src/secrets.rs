//! Which Secrets are kept in memory, and how that is bounded.
//!
//! Only `kubernetes.io/tls` Secrets are watched (field selector `type=kubernetes.io/tls`, served by every
//! API server), and of those only the ones named in `spec.tls[].secretName` of an Ingress of our class
//! (in the Ingress's namespace) are kept: any other Secret's event is dropped on arrival, so memory holds
//! at most one Secret per distinct TLS reference of our Ingresses, whatever else the cluster stores.
//!
//! When the Ingresses come to reference a Secret that is not held (a new TLS Ingress), the Secret watch
//! is restarted with the new reference set: it relists the TLS Secrets, keeps the referenced ones, and
//! publication of snapshots waits for that list so that a route never appears without its certificate.
//! References that go away are dropped from memory at the next publication, without a relist.

use std::collections::BTreeSet;
use std::sync::Arc;

use rauta_routes::class::ClassFilter;
use rauta_routes::model::{Ingress, IngressClass, SharedInputs};
use rauta_routes::{Diagnostic, ObjectRef};

/// A Secret by namespace and name.
pub type SecretKey = (String, String);

/// The field selector of the Secret watch.
pub const TLS_FIELD_SELECTOR: &str = "type=kubernetes.io/tls";

/// The Secrets referenced by the TLS sections of the Ingresses of `class`.
pub fn referenced<'a>(
    class: &str,
    classes: &[Arc<IngressClass>],
    ingresses: impl IntoIterator<Item = &'a Arc<Ingress>>,
) -> BTreeSet<SecretKey> {
    let filter = ClassFilter::from_classes(class, classes.iter().map(|c| &**c));
    ingresses
        .into_iter()
        .filter(|ingress| filter.owns(ingress))
        .flat_map(|ingress| {
            let namespace = ingress.metadata.namespace().to_string();
            ingress
                .spec
                .tls
                .iter()
                .filter_map(move |tls| Some((namespace.clone(), tls.secret_name.clone()?)))
        })
        .collect()
}

/// Problems with the TLS Secrets our Ingresses name: missing, or without `tls.crt` and `tls.key`. (The
/// certificates themselves are checked by whatever loads them.)
pub fn diagnostics(class: &str, inputs: &SharedInputs) -> Vec<Diagnostic> {
    let filter = ClassFilter::from_classes(class, inputs.ingress_classes.iter().map(|c| &**c));
    let mut out = Vec::new();
    for ingress in inputs.ingresses.iter().filter(|i| filter.owns(i)) {
        let namespace = ingress.metadata.namespace();
        for (i, tls) in ingress.spec.tls.iter().enumerate() {
            let Some(name) = &tls.secret_name else {
                continue;
            };
            let secret = inputs
                .secrets
                .iter()
                .find(|s| s.metadata.namespace() == namespace && &s.metadata.name == name);
            let message = match secret {
                None => format!(
                    "TLS Secret {namespace}/{name} not found (or not of type kubernetes.io/tls)"
                ),
                Some(secret)
                    if ["tls.crt", "tls.key"]
                        .iter()
                        .any(|k| secret.data.get(*k).is_none_or(String::is_empty)) =>
                {
                    format!("TLS Secret {namespace}/{name} lacks tls.crt or tls.key")
                }
                Some(_) => continue,
            };
            out.push(Diagnostic {
                object: ObjectRef::new("Ingress", &ingress.metadata),
                field: format!("spec.tls[{i}].secretName"),
                message,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rauta_routes::model::{IngressSpec, IngressTls, ObjectMeta};

    fn ingress(name: &str, class: &str, secret: &str) -> Ingress {
        Ingress {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some("web".into()),
                ..ObjectMeta::default()
            },
            spec: IngressSpec {
                ingress_class_name: Some(class.into()),
                tls: vec![IngressTls {
                    hosts: vec![],
                    secret_name: Some(secret.into()),
                }],
                ..IngressSpec::default()
            },
        }
    }

    #[test]
    fn only_our_class_counts() {
        let ours = Arc::new(ingress("a", "rauta", "cert-a"));
        let theirs = Arc::new(ingress("b", "nginx", "cert-b"));
        let refs = referenced("rauta", &[], [&ours, &theirs]);
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            [("web".to_string(), "cert-a".to_string())]
        );
    }
}
