//! The compiled route and the small value types it is made of.

use std::sync::Arc;

use crate::backend::Backend;
use crate::diagnostic::ObjectRef;

/// The controller name IngressClasses must carry for RAUTA to own them.
pub const CONTROLLER_NAME: &str = "rauta.io/ingress-controller";

/// Ingress annotation switching off the HTTP → HTTPS redirect of its TLS routes: `"false"` (any case) turns
/// it off, `"true"` or absent keeps it on.
pub const SSL_REDIRECT_ANNOTATION: &str = "rauta.io/ssl-redirect";

/// A Service port reference: what an Ingress backend (or `--default-backend`) names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ServiceRef {
    /// Namespace of the Service (always the Ingress's own namespace for Ingress backends).
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// The Service port, by number or by name.
    pub port: PortRef,
}

impl std::fmt::Display for ServiceRef {
    /// `namespace/name:port`, the form of `--default-backend` and of the `/routes` endpoint.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

/// A Service port, as an Ingress backend names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum PortRef {
    /// Matches the Service port's `port` field.
    Number(u16),
    /// Matches the Service port's `name` field.
    Name(String),
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(n) => f.write_str(n),
        }
    }
}

/// How a route's path matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum PathType {
    /// The whole path, case-sensitive, trailing slash significant.
    Exact,
    /// Element-wise prefix over `/`-separated elements, trailing slash ignored.
    Prefix,
    /// RAUTA's ImplementationSpecific: a regular expression that must match the whole path.
    Regex,
}

impl PathType {
    /// The Kubernetes spelling (`ImplementationSpecific` for [`PathType::Regex`]).
    pub fn as_k8s(self) -> &'static str {
        match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::Regex => "ImplementationSpecific",
        }
    }

    /// Tie-break rank at equal path length: lower wins (Exact, then Prefix, then Regex).
    pub(crate) fn rank(self) -> u8 {
        match self {
            PathType::Exact => 0,
            PathType::Prefix => 1,
            PathType::Regex => 2,
        }
    }
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

impl Tier {
    /// The tier a route is eligible for: the kernel tiers only parse plain HTTP and only do hash
    /// lookups, so TLS and regexes stay in userspace.
    pub fn for_route(path_type: PathType, tls: bool) -> Tier {
        match (path_type, tls) {
            (PathType::Exact, false) => Tier::Xdp,
            (PathType::Prefix, false) => Tier::Tc,
            _ => Tier::Userspace,
        }
    }
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// `None` matches any host not matched by a host rule; `*.example.com` is a wildcard. Lowercase.
    pub host: Option<String>,
    /// The path as written in the Ingress (for Regex: the pattern, unanchored).
    pub path: String,
    /// How `path` matches.
    pub path_type: PathType,
    /// The upstream; shared by every route naming the same [`ServiceRef`].
    pub backend: Arc<Backend>,
    /// The Ingress the route comes from.
    pub ingress: ObjectRef,
    /// The host is listed under the Ingress's `spec.tls`.
    pub tls: bool,
    /// Plain-HTTP requests to this route get a 308 to `https://` (only meaningful with `tls`; off when the
    /// Ingress sets [`SSL_REDIRECT_ANNOTATION`] to `"false"`).
    pub ssl_redirect: bool,
    /// The fastest tier that can serve this route.
    pub tier: Tier,
}
