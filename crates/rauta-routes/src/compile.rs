//! The compiler: Kubernetes objects in, a [`RouteTable`] and diagnostics out.
//!
//! Ingresses are processed oldest first (creationTimestamp, then namespace/name; a missing timestamp
//! sorts after every timestamp), so that whenever two Ingresses claim the same thing, the older one
//! wins and the newer one gets the diagnostic.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::backend::{Backend, Resolver};
use crate::class::ClassFilter;
use crate::diagnostic::{Diagnostic, ObjectRef};
use crate::health_policy::{AnnotationSource, HealthPolicy};
use crate::host::HostPattern;
use crate::lookup::{DefaultBackend, DefaultScope, FastMap, HostRoutes, RegexRoute, RouteTable};
use crate::lower::{lower, BackendRef, GroupKey, Lowered, PathStep, Step};
use crate::model::{EndpointSlice, Ingress, IngressClass, Inputs, Service};
use crate::path::PathSpec;
use crate::route::{PathType, Route, ServiceRef, Tier};

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
    let objects = Objects {
        ingresses: inputs.ingresses.iter().collect(),
        ingress_classes: inputs.ingress_classes.iter().collect(),
        services: inputs.services.iter().collect(),
        endpoint_slices: inputs.endpoint_slices.iter().collect(),
    };
    let filter = ClassFilter::from_classes(
        &options.ingress_class,
        objects.ingress_classes.iter().copied(),
    );
    let ours: Vec<&Ingress> = objects
        .ingresses
        .iter()
        .copied()
        .filter(|i| filter.owns(i))
        .collect();
    let lowered: Vec<Lowered> = ours.iter().map(|i| lower(i)).collect();
    let ours: Vec<(&Ingress, &Lowered)> = ours.into_iter().zip(lowered.iter()).collect();
    compile_lowered(&objects, ours, options)
}

/// The objects of one compile, borrowed (from [`Inputs`] or from [`crate::model::SharedInputs`]).
pub(crate) struct Objects<'a> {
    pub ingresses: Vec<&'a Ingress>,
    pub ingress_classes: Vec<&'a IngressClass>,
    pub services: Vec<&'a Service>,
    pub endpoint_slices: Vec<&'a EndpointSlice>,
}

/// The compile after lowering: `ours` are the Ingresses of our class with their lowered form, in any
/// order. Shared by [`compile`] and the incremental compiler, so that both produce the same result.
pub(crate) fn compile_lowered<'a>(
    objects: &Objects<'a>,
    mut ours: Vec<(&'a Ingress, &'a Lowered)>,
    options: &CompileOptions,
) -> Compiled {
    let mut diagnostics = Vec::new();
    // Sized once: growing a map of 10,000 claims by doubling frees a chain of large blocks per compile.
    let paths = ours.iter().map(|(_, l)| l.steps.len()).sum();
    let mut c = Compiler {
        resolver: Resolver::new(
            &objects.services,
            &objects.endpoint_slices,
            &mut diagnostics,
        ),
        backends: FastMap::default(),
        diagnostics,
        groups: BTreeMap::new(),
        claimed: FastMap::with_capacity_and_hasher(paths, Default::default()),
        catch_all: None,
        current: None,
    };
    ours.sort_by(|a, b| age_key(a.0).cmp(&age_key(b.0)));
    for (ingress, lowered) in ours {
        c.current = Some(ingress);
        c.add_ingress(lowered);
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

/// A route before the table is laid out.
struct Pending<'a> {
    spec: &'a PathSpec,
    route: Route,
}

/// Per-host state while compiling.
#[derive(Default)]
struct Group<'a> {
    /// The default backend of the oldest Ingress with rules for this host that has one.
    default_backend: Option<(Arc<Backend>, ObjectRef)>,
    /// The host's routes, oldest Ingress and first declared first.
    pending: Vec<Pending<'a>>,
}

/// A resolved backend and its configuration problem (sub-field, message), if any.
type CachedBackend = (Arc<Backend>, Option<(&'static str, String)>);

struct Compiler<'a> {
    resolver: Resolver<'a>,
    backends: FastMap<ServiceRef, CachedBackend>,
    diagnostics: Vec<Diagnostic>,
    groups: BTreeMap<&'a GroupKey, Group<'a>>,
    /// (host, path type, path identity) → the Ingress that owns it.
    claimed: FastMap<(&'a GroupKey, PathType, &'a str), &'a ObjectRef>,
    catch_all: Option<(Arc<Backend>, ObjectRef)>,
    /// The Ingress being added: its annotations give the health policy of backends it references first.
    current: Option<&'a Ingress>,
}

impl<'a> Compiler<'a> {
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

    /// Turn a lowered backend reference into a shared backend, or report why it cannot be one.
    fn ingress_backend(
        &mut self,
        ingress: &ObjectRef,
        b: &BackendRef,
        field: &dyn Fn() -> String,
    ) -> Option<Arc<Backend>> {
        match b {
            Ok(service) => Some(self.backend(service, || (ingress.clone(), field()))),
            Err((sub, message)) => {
                self.diag(ingress, format!("{}.{sub}", field()), message.clone());
                None
            }
        }
    }

    /// Replay one lowered Ingress (see [`crate::lower`]) against what older Ingresses claimed.
    fn add_ingress(&mut self, lowered: &'a Lowered) {
        let me = &lowered.me;
        let mut default_backend = None;
        for step in &lowered.steps {
            match step {
                Step::Problem(field, message) => self.diag(me, field.clone(), message.clone()),
                Step::DefaultBackend(b) => {
                    default_backend =
                        self.ingress_backend(me, b, &|| "spec.defaultBackend".to_owned());
                }
                Step::Rule(host) => self.claim_host_default(host, default_backend.as_ref(), me),
                Step::Path(p) => self.add_path(lowered, p),
            }
        }
        if let (Some(backend), false) = (default_backend, lowered.has_host_rules) {
            match &self.catch_all {
                None => self.catch_all = Some((backend, me.clone())),
                Some((_, winner)) => {
                    let message = format!(
                        "conflict lost to {winner}: both have a defaultBackend and no host rules; this one is not the catch-all"
                    );
                    self.diag(me, "spec.defaultBackend".into(), message);
                }
            }
        }
    }

    /// One path: claim it unless an older Ingress did, and queue its route under its host.
    fn add_path(&mut self, lowered: &'a Lowered, p: &'a PathStep) {
        let me = &lowered.me;
        let (path_type, identity) = p.spec.identity();
        let key = (&p.host, path_type, identity);
        if let Some(winner) = self.claimed.get(&key) {
            let message = format!(
                "conflict lost to {winner}: same host {:?}, path {:?} and pathType {}; path ignored",
                p.host_string().unwrap_or_default(),
                p.spec.written(),
                path_type.as_k8s()
            );
            self.diag(me, p.field(), message);
            return;
        }
        let Some(backend) = self.ingress_backend(me, &p.backend, &|| p.backend_field()) else {
            return;
        };
        self.claimed.insert(key, me);
        // The kernel tiers forward the client's HTTP/1.1 request as it came.
        let tier = if backend.speaks_plain_http1() {
            Tier::for_route(path_type, p.tls)
        } else {
            Tier::Userspace
        };
        let route = Route {
            host: p.host_string(),
            path: p.spec.written().to_owned(),
            path_type,
            backend,
            ingress: me.clone(),
            tls: p.tls,
            ssl_redirect: p.tls && lowered.ssl_redirect,
            tier,
        };
        self.groups
            .entry(&p.host)
            .or_default()
            .pending
            .push(Pending {
                spec: &p.spec,
                route,
            });
    }

    /// Record that `ingress` has rules for `host`; its default backend becomes the host's if it is the
    /// first (oldest) one with a default backend there.
    fn claim_host_default(
        &mut self,
        host: &'a GroupKey,
        backend: Option<&Arc<Backend>>,
        ingress: &ObjectRef,
    ) {
        let group = self.groups.entry(host).or_default();
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

    /// Lay the routes out: by host (hostless last), then by precedence within the host, and index them
    /// per host.
    fn build(self, controller_default: Option<DefaultBackend>) -> (RouteTable, Vec<Diagnostic>) {
        let Compiler {
            groups,
            catch_all,
            diagnostics,
            ..
        } = self;
        let mut table = RouteTable::default();
        table
            .routes
            .reserve(groups.values().map(|g| g.pending.len()).sum());
        // BTreeMap order puts the hostless rules (`None`) first; they go last.
        let (hostless, hosts): (Vec<_>, Vec<_>) =
            groups.into_iter().partition(|(k, _)| k.is_none());
        for (key, mut group) in hosts.into_iter().chain(hostless) {
            if let Some((backend, ingress)) = &group.default_backend {
                let host = key.as_ref().map(HostPattern::to_host_string);
                table.default_backends.push(DefaultBackend {
                    scope: DefaultScope::Host(host),
                    ingress: Some(ingress.clone()),
                    backend: Arc::clone(backend),
                });
            }
            let mut routes = HostRoutes {
                default_backend: group.default_backend.map(|(b, _)| b),
                ..Default::default()
            };
            // Stable sort: routes that tie (only possible between regexes of equal pattern length, which
            // may both match) keep the order they were added in, oldest Ingress and first declared
            // first, and the lookup tries them in that order.
            group.pending.sort_by(|a, b| {
                b.spec
                    .precedence_len()
                    .cmp(&a.spec.precedence_len())
                    .then_with(|| a.route.path_type.rank().cmp(&b.route.path_type.rank()))
            });
            for p in group.pending {
                let index = u32::try_from(table.routes.len()).unwrap_or(u32::MAX);
                match p.spec {
                    PathSpec::Exact(path) => {
                        routes.exact_lens.insert(path.len());
                        routes.exact.insert(path.as_str().into(), index);
                    }
                    PathSpec::Prefix { key, .. } => {
                        routes.prefix_lens.insert(key.len());
                        routes.prefix.insert(key.as_str().into(), index);
                    }
                    PathSpec::Regex { pattern, regex } => {
                        // Sorted by decreasing precedence, so pushing keeps the list sorted.
                        routes.regexes.push(RegexRoute {
                            regex: regex.clone(),
                            len: pattern.len(),
                            route: index,
                        });
                    }
                }
                table.routes.push(p.route);
            }
            match key {
                Some(HostPattern::Exact(h)) => {
                    table.exact_hosts.insert(h.as_str().into(), routes);
                }
                Some(HostPattern::Wildcard(suffix)) => {
                    table.wildcard_hosts.insert(suffix.as_str().into(), routes);
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
