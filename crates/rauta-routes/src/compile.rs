//! The compiler: Kubernetes objects in, a [`RouteTable`] and diagnostics out.
//!
//! Ingresses are processed oldest first (creationTimestamp, then namespace/name; a missing timestamp
//! sorts after every timestamp), so that whenever two Ingresses claim the same thing, the older one
//! wins and the newer one gets the diagnostic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::backend::{Backend, Resolver};
use crate::class::ClassFilter;
use crate::diagnostic::{Diagnostic, ObjectRef};
use crate::health_policy::{AnnotationSource, HealthPolicy};
use crate::host::{tls_covers, HostPattern};
use crate::lookup::{DefaultBackend, DefaultScope, HostRoutes, RegexRoute, RouteTable};
use crate::model::{Ingress, IngressBackend, Inputs};
use crate::path::PathSpec;
use crate::route::{PathType, PortRef, Route, ServiceRef, Tier, SSL_REDIRECT_ANNOTATION};

/// Compiler settings that do not come from objects.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// `--ingress-class` (default `rauta`).
    pub ingress_class: String,
    /// Controller-wide default backend `namespace/name:port` (port number or name), if configured.
    pub default_backend: Option<ServiceRef>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            ingress_class: "rauta".into(),
            default_backend: None,
        }
    }
}

/// The result of a compile: a table plus every problem found.
#[derive(Debug)]
pub struct Compiled {
    /// The table to serve.
    pub table: RouteTable,
    /// Every problem found, in a deterministic order (oldest Ingress first).
    pub diagnostics: Vec<Diagnostic>,
}

/// Compile objects into a table. Never fails: invalid pieces are dropped with a diagnostic.
pub fn compile(inputs: &Inputs, options: &CompileOptions) -> Compiled {
    let mut diagnostics = Vec::new();
    let mut c = Compiler {
        resolver: Resolver::new(&inputs.services, &inputs.endpoint_slices, &mut diagnostics),
        backends: HashMap::new(),
        diagnostics,
        groups: BTreeMap::new(),
        claimed: HashMap::new(),
        pending: Vec::new(),
        catch_all: None,
        current: None,
    };
    let filter = ClassFilter::new(&options.ingress_class, &inputs.ingress_classes);
    let mut ours: Vec<&Ingress> = inputs.ingresses.iter().filter(|i| filter.owns(i)).collect();
    ours.sort_by(|a, b| age_key(a).cmp(&age_key(b)));
    for ingress in ours {
        c.current = Some(ingress);
        c.add_ingress(ingress);
    }
    c.current = None;
    let controller_default = options.default_backend.as_ref().map(|service| {
        let backend = c.backend(service, || {
            let object = ObjectRef {
                kind: "Service",
                namespace: service.namespace.clone(),
                name: service.name.clone(),
            };
            (object, "--default-backend".to_owned())
        });
        DefaultBackend {
            scope: DefaultScope::Controller,
            ingress: None,
            backend,
        }
    });
    let (table, diagnostics) = c.build(controller_default);
    Compiled { table, diagnostics }
}

/// Sort key for "oldest first": timestamps are RFC 3339 in UTC (`2024-01-02T03:04:05Z`) as the API
/// server writes them, which order correctly as strings.
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

/// Which rules a request host selects: one host, or (`None`) the rules without a host.
type GroupKey = Option<HostPattern>;

/// A route before the table is laid out.
struct Pending {
    host: GroupKey,
    spec: PathSpec,
    route: Route,
}

/// Per-host state while compiling.
#[derive(Default)]
struct Group {
    /// The default backend of the oldest Ingress with rules for this host that has one.
    default_backend: Option<(Arc<Backend>, ObjectRef)>,
}

/// A resolved backend and its configuration problem (sub-field, message), if any.
type CachedBackend = (Arc<Backend>, Option<(&'static str, String)>);

struct Compiler<'a> {
    resolver: Resolver<'a>,
    backends: HashMap<ServiceRef, CachedBackend>,
    diagnostics: Vec<Diagnostic>,
    groups: BTreeMap<GroupKey, Group>,
    /// (host, path type, path identity) → the Ingress that owns it.
    claimed: HashMap<(GroupKey, PathType, String), ObjectRef>,
    pending: Vec<Pending>,
    catch_all: Option<(Arc<Backend>, ObjectRef)>,
    /// The Ingress being added: its annotations give the health policy of backends it references first.
    current: Option<&'a Ingress>,
}

impl Compiler<'_> {
    fn diag(&mut self, object: &ObjectRef, field: String, message: String) {
        self.diagnostics.push(Diagnostic {
            object: object.clone(),
            field,
            message,
        });
    }

    /// The shared backend for a Service port. A broken one gets a diagnostic at every reference: `at`
    /// names the referencing object and field, to which the problem's sub-field is appended.
    fn backend(
        &mut self,
        service: &ServiceRef,
        at: impl FnOnce() -> (ObjectRef, String),
    ) -> Arc<Backend> {
        let (backend, problem) = match self.backends.get(service) {
            Some((b, p)) => (Arc::clone(b), p.clone()),
            None => {
                let mut resolved = self.resolver.resolve(service);
                resolved.backend.health = self.health_policy(service);
                let b = Arc::new(resolved.backend);
                self.backends.insert(
                    service.clone(),
                    (Arc::clone(&b), resolved.config_problem.clone()),
                );
                (b, resolved.config_problem)
            }
        };
        if let Some((sub, message)) = problem {
            let (object, field) = at();
            self.diag(&object, format!("{field}.{sub}"), message);
        }
        backend
    }

    /// The health policy of a Service port: the Service's annotations, then those of the Ingress being added
    /// (the oldest one referencing it). Bad values are reported on the object that carries them.
    fn health_policy(&mut self, service: &ServiceRef) -> HealthPolicy {
        let svc = self.resolver.service(service);
        let ingress = self.current;
        let (policy, problems) = HealthPolicy::from_annotations(
            svc.map(|s| &s.metadata.annotations),
            ingress.map(|i| &i.metadata.annotations),
        );
        for problem in problems {
            let object = match (problem.source, svc, ingress) {
                (AnnotationSource::Service, Some(s), _) => ObjectRef::new("Service", &s.metadata),
                (AnnotationSource::Ingress, _, Some(i)) => ObjectRef::new("Ingress", &i.metadata),
                // A problem always comes from an object that was passed in.
                _ => continue,
            };
            let field = format!("metadata.annotations[{}]", problem.key);
            self.diag(&object, field, problem.message);
        }
        policy
    }

    /// Turn an Ingress backend into a shared backend, or report why it cannot be one.
    fn ingress_backend(
        &mut self,
        ingress: &ObjectRef,
        b: &IngressBackend,
        field: &str,
    ) -> Option<Arc<Backend>> {
        match service_ref(&ingress.namespace, b) {
            Ok(service) => Some(self.backend(&service, || (ingress.clone(), field.to_owned()))),
            Err((sub, message)) => {
                self.diag(ingress, format!("{field}.{sub}"), message);
                None
            }
        }
    }

    fn add_ingress(&mut self, ingress: &Ingress) {
        let me = ObjectRef::new("Ingress", &ingress.metadata);
        let spec = &ingress.spec;
        let tls_hosts: Vec<Vec<String>> = spec.tls.iter().map(|t| t.hosts.clone()).collect();
        let ssl_redirect = self.ssl_redirect(ingress, &me);
        let default_backend = spec
            .default_backend
            .as_ref()
            .and_then(|b| self.ingress_backend(&me, b, "spec.defaultBackend"));
        let has_host_rules = spec
            .rules
            .iter()
            .any(|r| r.host.as_deref().is_some_and(|h| !h.is_empty()));

        for (ri, rule) in spec.rules.iter().enumerate() {
            let host: GroupKey = match rule.host.as_deref().filter(|h| !h.is_empty()) {
                None => None,
                Some(h) => match HostPattern::parse(h) {
                    Ok(p) => Some(p),
                    Err(message) => {
                        self.diag(
                            &me,
                            format!("spec.rules[{ri}].host"),
                            format!("{message}; rule ignored"),
                        );
                        continue;
                    }
                },
            };
            // The host is claimed even by a rule without paths: its requests go to this Ingress's
            // default backend rather than to the hostless rules.
            self.claim_host_default(&host, default_backend.as_ref(), &me);
            let tls = tls_covers(host.as_ref(), &tls_hosts);
            let Some(http) = &rule.http else { continue };
            for (pi, p) in http.paths.iter().enumerate() {
                let field = format!("spec.rules[{ri}].http.paths[{pi}]");
                let spec = match PathSpec::parse(p.path.as_deref(), p.path_type.as_deref()) {
                    Ok(s) => s,
                    Err((sub, message)) => {
                        self.diag(
                            &me,
                            format!("{field}.{sub}"),
                            format!("{message}; path ignored"),
                        );
                        continue;
                    }
                };
                let (path_type, identity) = spec.identity();
                let key = (host.clone(), path_type, identity.to_owned());
                if let Some(winner) = self.claimed.get(&key) {
                    let message = format!(
                        "conflict lost to {winner}: same host {:?}, path {:?} and pathType {}; path ignored",
                        host.as_ref().map(HostPattern::to_host_string).unwrap_or_default(),
                        spec.written(),
                        path_type.as_k8s()
                    );
                    self.diag(&me, field, message);
                    continue;
                }
                let Some(backend) =
                    self.ingress_backend(&me, &p.backend, &format!("{field}.backend"))
                else {
                    continue;
                };
                self.claimed.insert(key, me.clone());
                // The kernel tiers forward the client's HTTP/1.1 request as it came.
                let tier = if backend.speaks_plain_http1() {
                    Tier::for_route(path_type, tls)
                } else {
                    Tier::Userspace
                };
                let route = Route {
                    host: host.as_ref().map(HostPattern::to_host_string),
                    path: spec.written().to_owned(),
                    path_type,
                    backend,
                    ingress: me.clone(),
                    tls,
                    ssl_redirect: tls && ssl_redirect,
                    tier,
                };
                self.pending.push(Pending {
                    host: host.clone(),
                    spec,
                    route,
                });
            }
        }

        if let (Some(backend), false) = (default_backend, has_host_rules) {
            match &self.catch_all {
                None => self.catch_all = Some((backend, me)),
                Some((_, winner)) => {
                    let message = format!(
                        "conflict lost to {winner}: both have a defaultBackend and no host rules; this one is not the catch-all"
                    );
                    self.diag(&me, "spec.defaultBackend".into(), message);
                }
            }
        }
    }

    /// Whether the Ingress's TLS routes redirect plain HTTP to HTTPS: on unless the annotation says
    /// `"false"`. A value that is neither `true` nor `false` keeps the default, with a diagnostic.
    fn ssl_redirect(&mut self, ingress: &Ingress, me: &ObjectRef) -> bool {
        let Some(value) = ingress.metadata.annotations.get(SSL_REDIRECT_ANNOTATION) else {
            return true;
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "false" => false,
            "true" => true,
            _ => {
                self.diag(
                    me,
                    format!("metadata.annotations[{SSL_REDIRECT_ANNOTATION}]"),
                    format!("{value:?} is not \"true\" or \"false\"; redirect stays on"),
                );
                true
            }
        }
    }

    /// Record that `ingress` has rules for `host`; its default backend becomes the host's if it is the
    /// first (oldest) one with a default backend there.
    fn claim_host_default(
        &mut self,
        host: &GroupKey,
        backend: Option<&Arc<Backend>>,
        ingress: &ObjectRef,
    ) {
        let group = self.groups.entry(host.clone()).or_default();
        let Some(backend) = backend else { return };
        match &group.default_backend {
            None => group.default_backend = Some((Arc::clone(backend), ingress.clone())),
            Some((existing, winner))
                if winner != ingress && existing.service != backend.service =>
            {
                let message = format!(
                    "conflict lost to {winner}: it also has rules for host {:?} and a different defaultBackend",
                    host.as_ref().map(HostPattern::to_host_string).unwrap_or_default()
                );
                self.diag(ingress, "spec.defaultBackend".into(), message);
            }
            Some(_) => {}
        }
    }

    /// Lay the routes out: sorted by host (hostless last) then precedence, and indexed per host.
    fn build(self, controller_default: Option<DefaultBackend>) -> (RouteTable, Vec<Diagnostic>) {
        let Compiler {
            groups,
            mut pending,
            catch_all,
            diagnostics,
            ..
        } = self;
        // Stable sort: routes that tie (only possible between regexes of equal pattern length, which
        // may both match) keep the order they were added in, oldest Ingress and first declared first,
        // and the lookup tries them in that order.
        pending.sort_by(|a, b| {
            let host = (a.host.is_none(), &a.host).cmp(&(b.host.is_none(), &b.host));
            host.then_with(|| b.spec.precedence_len().cmp(&a.spec.precedence_len()))
                .then_with(|| a.route.path_type.rank().cmp(&b.route.path_type.rank()))
        });

        let mut table = RouteTable::default();
        let mut hosts: BTreeMap<GroupKey, HostRoutes> = BTreeMap::new();
        for (key, group) in groups {
            if let Some((backend, ingress)) = &group.default_backend {
                let host = key.as_ref().map(HostPattern::to_host_string);
                table.default_backends.push(DefaultBackend {
                    scope: DefaultScope::Host(host),
                    ingress: Some(ingress.clone()),
                    backend: Arc::clone(backend),
                });
            }
            let routes = HostRoutes {
                default_backend: group.default_backend.map(|(b, _)| b),
                ..Default::default()
            };
            hosts.insert(key, routes);
        }
        for p in pending {
            let index = u32::try_from(table.routes.len()).unwrap_or(u32::MAX);
            let group = hosts.entry(p.host).or_default();
            match p.spec {
                PathSpec::Exact(path) => {
                    group.exact_lens.insert(path.len());
                    group.exact.insert(path.into_boxed_str(), index);
                }
                PathSpec::Prefix { key, .. } => {
                    group.prefix_lens.insert(key.len());
                    group.prefix.insert(key.into_boxed_str(), index);
                }
                PathSpec::Regex { pattern, regex } => {
                    // Pending is sorted by decreasing precedence, so pushing keeps the list sorted.
                    group.regexes.push(RegexRoute {
                        regex,
                        len: pattern.len(),
                        route: index,
                    });
                }
            }
            table.routes.push(p.route);
        }
        for (key, routes) in hosts {
            match key {
                Some(HostPattern::Exact(h)) => {
                    table.exact_hosts.insert(h.into_boxed_str(), routes);
                }
                Some(HostPattern::Wildcard(suffix)) => {
                    table.wildcard_hosts.insert(suffix.into_boxed_str(), routes);
                }
                None => table.hostless = Some(routes),
            }
        }
        if let Some((backend, ingress)) = catch_all {
            table.default_backends.push(DefaultBackend {
                scope: DefaultScope::CatchAll,
                ingress: Some(ingress),
                backend: Arc::clone(&backend),
            });
            table.fallback = Some(backend);
        }
        if let Some(d) = controller_default {
            if table.fallback.is_none() {
                table.fallback = Some(Arc::clone(&d.backend));
            }
            table.default_backends.push(d);
        }
        (table, diagnostics)
    }
}

/// The Service port an Ingress backend names, in the Ingress's namespace. `Err` carries the sub-field
/// of the backend and the message.
fn service_ref(namespace: &str, b: &IngressBackend) -> Result<ServiceRef, (&'static str, String)> {
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
