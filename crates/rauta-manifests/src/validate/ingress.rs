//! Ingress and IngressClass rules.

use super::{metadata, names, port_number, Problems};
use rauta_routes::model::{Ingress, IngressBackend, IngressClass};
use rauta_routes::Kind;

/// The path types of networking.k8s.io/v1.
const PATH_TYPES: [&str; 3] = ["Exact", "Prefix", "ImplementationSpecific"];

/// Validates an Ingress.
pub(crate) fn ingress(ing: &Ingress) -> Problems {
    let mut p = Problems::default();
    metadata(Kind::Ingress, &ing.metadata, &mut p);
    let spec = &ing.spec;
    if let Some(class) = spec.ingress_class_name.as_deref() {
        p.check("spec.ingressClassName", names::dns1123_subdomain(class));
    }
    if spec.default_backend.is_none() && spec.rules.is_empty() {
        p.add(
            "spec",
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    if let Some(backend) = &spec.default_backend {
        self::backend("spec.defaultBackend", backend, &mut p);
    }
    for (i, tls) in spec.tls.iter().enumerate() {
        for (j, host) in tls.hosts.iter().enumerate() {
            p.check(
                format!("spec.tls[{i}].hosts[{j}]"),
                names::ingress_host(host),
            );
        }
        if let Some(secret) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
            p.check(
                format!("spec.tls[{i}].secretName"),
                names::dns1123_subdomain(secret),
            );
        }
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            p.check(format!("spec.rules[{i}].host"), names::ingress_host(host));
        }
        let Some(http) = &rule.http else { continue };
        if http.paths.is_empty() {
            p.add(format!("spec.rules[{i}].http.paths"), "required value");
        }
        for (j, path) in http.paths.iter().enumerate() {
            let at = format!("spec.rules[{i}].http.paths[{j}]");
            match path.path_type.as_deref() {
                None => p.add(format!("{at}.pathType"), "required value"),
                Some(t) if !PATH_TYPES.contains(&t) => p.add(
                    format!("{at}.pathType"),
                    format!(
                        "unknown variant `{t}`, expected one of `Exact`, `Prefix`, `ImplementationSpecific`"
                    ),
                ),
                Some("Exact" | "Prefix") => match path.path.as_deref() {
                    None | Some("") => p.add(
                        format!("{at}.path"),
                        "required value for pathType Exact and Prefix",
                    ),
                    Some(s) if !s.starts_with('/') => p.add(
                        format!("{at}.path"),
                        format!("must be an absolute path starting with '/' (got {s:?})"),
                    ),
                    Some(_) => {}
                },
                Some(_) => {} // ImplementationSpecific: a regex, checked by the compiler.
            }
            self::backend(&format!("{at}.backend"), &path.backend, &mut p);
        }
    }
    p
}

/// A backend: exactly one of `service` or `resource`; a service needs a name and exactly one of
/// `port.number` (1-65535) or `port.name`.
fn backend(at: &str, backend: &IngressBackend, p: &mut Problems) {
    match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => p.add(at, "only one of `service` or `resource` may be set"),
        (None, None) => p.add(at, "one of `service` or `resource` is required"),
        // Resource backends are reported by the compiler (unsupported), not rejected here.
        (None, Some(_)) => {}
        (Some(service), None) => {
            if service.name.is_empty() {
                p.add(format!("{at}.service.name"), "required value");
            } else {
                p.check(
                    format!("{at}.service.name"),
                    names::dns1035_label(&service.name),
                );
            }
            let port = &service.port;
            match (port.number, port.name.as_deref().filter(|n| !n.is_empty())) {
                (Some(_), Some(_)) => p.add(
                    format!("{at}.service.port"),
                    "only one of `number` or `name` may be set",
                ),
                (None, None) => p.add(
                    format!("{at}.service.port"),
                    "one of `number` or `name` is required",
                ),
                (Some(n), None) => port_number(format!("{at}.service.port.number"), n.into(), p),
                (None, Some(name)) => p.check(
                    format!("{at}.service.port.name"),
                    names::iana_port_name(name),
                ),
            }
        }
    }
}

/// Validates an IngressClass.
pub(crate) fn ingress_class(class: &IngressClass) -> Problems {
    let mut p = Problems::default();
    metadata(Kind::IngressClass, &class.metadata, &mut p);
    if class.spec.controller.as_deref().unwrap_or("").is_empty() {
        p.add("spec.controller", "required value");
    }
    p
}
