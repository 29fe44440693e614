//! PUBLIC API SKETCH — the routes helper implements and may refine this (keeping the names the proxy uses).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::model::Inputs;

/// The controller name IngressClasses must carry for RAUTA to own them.
pub const CONTROLLER_NAME: &str = "rauta.io/ingress-controller";

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
        Self { ingress_class: "rauta".into(), default_backend: None }
    }
}

/// Which object a diagnostic is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectRef {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

/// A problem found while compiling; the rest of the configuration keeps working.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub object: ObjectRef,
    /// JSON-path-like field, e.g. `spec.rules[0].http.paths[1].pathType`.
    pub field: String,
    pub message: String,
}

/// The result of a compile: a table plus every problem found.
#[derive(Debug)]
pub struct Compiled {
    pub table: RouteTable,
    pub diagnostics: Vec<Diagnostic>,
}

/// Compile objects into a table. Never fails: invalid pieces are dropped with a diagnostic.
pub fn compile(_inputs: &Inputs, _options: &CompileOptions) -> Compiled {
    todo!()
}

/// A Service port reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: PortRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

/// How a route's path matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum PathType {
    Exact,
    Prefix,
    /// RAUTA's ImplementationSpecific: a regular expression that must match the whole path.
    Regex,
}

/// The fastest tier a route is eligible for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Tier {
    /// XDP: Exact path on plain HTTP (GET/HEAD at run time).
    Xdp = 1,
    /// TC: Prefix path on plain HTTP.
    Tc = 2,
    /// Userspace: everything else.
    Userspace = 3,
}

/// One upstream: a Service port resolved to its ready endpoints, with its Maglev table.
#[derive(Debug)]
pub struct Backend {
    pub service: ServiceRef,
    /// Ready endpoints (address + EndpointSlice port), sorted; empty means 503.
    pub endpoints: Vec<SocketAddr>,
    /// From the Service port, e.g. `kubernetes.io/h2c`.
    pub app_protocol: Option<String>,
    /// Why the backend has no endpoints, if it is broken (missing Service, port, ...).
    pub problem: Option<String>,
}

impl Backend {
    /// The endpoint for a client by Maglev over the flow hash of its address and port, or `None` if
    /// there is no ready endpoint.
    pub fn pick(&self, _client: SocketAddr) -> Option<SocketAddr> {
        todo!()
    }
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// `None` matches any host not matched by a host rule; `*.example.com` is a wildcard.
    pub host: Option<String>,
    pub path: String,
    pub path_type: PathType,
    pub backend: Arc<Backend>,
    pub ingress: ObjectRef,
    /// The host is listed under the Ingress's `spec.tls`.
    pub tls: bool,
    pub tier: Tier,
}

/// The result of matching a request.
#[derive(Debug)]
pub enum Match<'a> {
    Route(&'a Route),
    /// No path matched; an Ingress or controller-wide default backend applies.
    DefaultBackend(&'a Arc<Backend>),
    NotFound,
}

/// The immutable compiled table. Cheap to share (`Arc`), swapped whole on reload.
#[derive(Debug, Default)]
pub struct RouteTable {}

impl RouteTable {
    /// Match a request. `host` is the Host header as received (any case, may carry `:port`), `path` the
    /// path of the origin-form target without the query string, undecoded.
    pub fn lookup(&self, _host: &str, _path: &str) -> Match<'_> {
        todo!()
    }

    /// Every route, for `/routes` and the BPF map writer.
    pub fn routes(&self) -> &[Route] {
        todo!()
    }
}
