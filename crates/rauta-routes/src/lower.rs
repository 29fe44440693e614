//! Lowering: everything the compiler derives from one Ingress alone, before it meets the other objects.
//!
//! Host and path parsing (including regex compilation), backend references, field names for diagnostics
//! and the problems found in the Ingress by itself are a pure function of the Ingress, so the incremental
//! compiler keeps each Ingress's [`Lowered`] form and only lowers Ingresses that changed. The rest of the
//! compile (conflicts between Ingresses, backend resolution, layout) replays these steps in age order.
//!
//! Invariant: replaying the steps in order makes exactly the decisions, in exactly the order, that a
//! direct walk over the Ingress would (problems are reported in the order the fields are written).

use crate::diagnostic::ObjectRef;
use crate::host::{tls_covers, HostPattern};
use crate::model::{Ingress, IngressBackend};
use crate::path::PathSpec;
use crate::route::{PortRef, ServiceRef, SSL_REDIRECT_ANNOTATION};

/// Which rules a request host selects: one host, or (`None`) the rules without a host.
pub(crate) type GroupKey = Option<HostPattern>;

/// A backend reference, or why it is not one: (sub-field of the backend, message).
pub(crate) type BackendRef = Result<ServiceRef, (&'static str, String)>;

/// One Ingress, lowered.
#[derive(Debug)]
pub(crate) struct Lowered {
    /// The Ingress, for routes and diagnostics.
    pub me: ObjectRef,
    /// Whether TLS routes redirect plain HTTP (the annotation; on by default).
    pub ssl_redirect: bool,
    /// Whether any rule names a host (a defaultBackend then is not a catch-all).
    pub has_host_rules: bool,
    /// What to do, in the order a direct walk does it.
    pub steps: Vec<Step>,
}

/// One step of an Ingress's compile.
#[derive(Debug)]
pub(crate) enum Step {
    /// A problem in the Ingress by itself: (field, message).
    Problem(String, String),
    /// `spec.defaultBackend` (always before the rules).
    DefaultBackend(BackendRef),
    /// A rule for a host (the host claims the Ingress's default backend, if any).
    Rule(GroupKey),
    /// A path of the last [`Step::Rule`].
    Path(Box<PathStep>),
}

/// A parsed path of a rule. Kept for every path of every Ingress between compiles, so it holds no
/// string it can derive: the field names of diagnostics are formatted from the indices when needed.
#[derive(Debug)]
pub(crate) struct PathStep {
    /// The rule's host.
    pub host: GroupKey,
    /// The host is covered by the Ingress's `spec.tls`.
    pub tls: bool,
    /// `i` of `spec.rules[i]`.
    pub rule: u32,
    /// `j` of `spec.rules[i].http.paths[j]`.
    pub index: u32,
    /// The parsed path.
    pub spec: PathSpec,
    /// The backend it names.
    pub backend: BackendRef,
}

impl PathStep {
    /// `spec.rules[i].http.paths[j]`.
    pub fn field(&self) -> String {
        path_field(self.rule as usize, self.index as usize)
    }

    /// `spec.rules[i].http.paths[j].backend`.
    pub fn backend_field(&self) -> String {
        format!("{}.backend", self.field())
    }

    /// The host as routes show it (lowercase; `None` for the hostless rules).
    pub fn host_string(&self) -> Option<String> {
        self.host.as_ref().map(HostPattern::to_host_string)
    }
}

fn path_field(rule: usize, index: usize) -> String {
    format!("spec.rules[{rule}].http.paths[{index}]")
}

/// Lower one Ingress.
pub(crate) fn lower(ingress: &Ingress) -> Lowered {
    let me = ObjectRef::new("Ingress", &ingress.metadata);
    let spec = &ingress.spec;
    let mut steps = Vec::new();
    let ssl_redirect = ssl_redirect(ingress, &mut steps);
    if let Some(b) = &spec.default_backend {
        steps.push(Step::DefaultBackend(service_ref(me.namespace.as_str(), b)));
    }
    let has_host_rules = spec
        .rules
        .iter()
        .any(|r| r.host.as_deref().is_some_and(|h| !h.is_empty()));
    let tls_hosts: Vec<Vec<String>> = spec.tls.iter().map(|t| t.hosts.clone()).collect();
    for (ri, rule) in spec.rules.iter().enumerate() {
        let host: GroupKey = match rule.host.as_deref().filter(|h| !h.is_empty()) {
            None => None,
            Some(h) => match HostPattern::parse(h) {
                Ok(p) => Some(p),
                Err(message) => {
                    steps.push(Step::Problem(
                        format!("spec.rules[{ri}].host"),
                        format!("{message}; rule ignored"),
                    ));
                    continue;
                }
            },
        };
        // The host is claimed even by a rule without paths: its requests go to this Ingress's default
        // backend rather than to the hostless rules.
        steps.push(Step::Rule(host.clone()));
        let tls = tls_covers(host.as_ref(), &tls_hosts);
        let Some(http) = &rule.http else { continue };
        for (pi, p) in http.paths.iter().enumerate() {
            let spec = match PathSpec::parse(p.path.as_deref(), p.path_type.as_deref()) {
                Ok(s) => s,
                Err((sub, message)) => {
                    steps.push(Step::Problem(
                        format!("{}.{sub}", path_field(ri, pi)),
                        format!("{message}; path ignored"),
                    ));
                    continue;
                }
            };
            steps.push(Step::Path(Box::new(PathStep {
                host: host.clone(),
                tls,
                // Beyond u32::MAX rules or paths (impossible for an object the API server accepts)
                // only the field names in diagnostics would be wrong.
                rule: u32::try_from(ri).unwrap_or(u32::MAX),
                index: u32::try_from(pi).unwrap_or(u32::MAX),
                spec,
                backend: service_ref(me.namespace.as_str(), &p.backend),
            })));
        }
    }
    Lowered {
        me,
        ssl_redirect,
        has_host_rules,
        steps,
    }
}

/// Whether the Ingress's TLS routes redirect plain HTTP to HTTPS: on unless the annotation says
/// `"false"`. A value that is neither `true` nor `false` keeps the default, with a problem.
fn ssl_redirect(ingress: &Ingress, steps: &mut Vec<Step>) -> bool {
    let Some(value) = ingress.metadata.annotations.get(SSL_REDIRECT_ANNOTATION) else {
        return true;
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "false" => false,
        "true" => true,
        _ => {
            steps.push(Step::Problem(
                format!("metadata.annotations[{SSL_REDIRECT_ANNOTATION}]"),
                format!("{value:?} is not \"true\" or \"false\"; redirect stays on"),
            ));
            true
        }
    }
}

/// The Service port an Ingress backend names, in the Ingress's namespace. `Err` carries the sub-field
/// of the backend and the message.
fn service_ref(namespace: &str, b: &IngressBackend) -> BackendRef {
    if b.resource.is_some() {
        return Err((
            "resource",
            "resource backends are not supported by RAUTA; ignored".into(),
        ));
    }
    let Some(svc) = &b.service else {
        return Err(("service", "a service backend is required; ignored".into()));
    };
    if svc.name.is_empty() {
        return Err(("service.name", "service name is required; ignored".into()));
    }
    let port = match (
        svc.port.number,
        svc.port.name.as_deref().filter(|n| !n.is_empty()),
    ) {
        (Some(n), None) => match u16::try_from(n) {
            Ok(n) if n != 0 => PortRef::Number(n),
            _ => {
                return Err((
                    "service.port.number",
                    format!("port {n} is out of range 1-65535; ignored"),
                ))
            }
        },
        (None, Some(name)) => PortRef::Name(name.to_owned()),
        (Some(_), Some(_)) => {
            return Err((
                "service.port",
                "set port.number or port.name, not both; ignored".into(),
            ))
        }
        (None, None) => {
            return Err((
                "service.port",
                "port.number or port.name is required; ignored".into(),
            ))
        }
    };
    Ok(ServiceRef {
        namespace: namespace.to_owned(),
        name: svc.name.clone(),
        port,
    })
}
