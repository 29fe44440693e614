//! The route compiler: Kubernetes objects in, an immutable [`RouteTable`] out.
//!
//! Pure and IO-free: no files, no network, no clock, no async. The same function serves standalone mode
//! (objects parsed from manifest files by `rauta-manifests`) and Kubernetes mode (objects from watchers),
//! and its output is swapped into the proxy and written to the BPF maps as one snapshot.
//!
//! The matching rules are documented in `docs/routing.md`; each module implements one of them:
//! [`class`] (which Ingresses are ours), [`host`] (Host header and wildcard hosts), [`path`] (Exact,
//! Prefix and regex paths), [`backend`] (Service ports to endpoints and the per-client pick),
//! `compile` (objects to table) and `lookup` (table to route).

#![warn(missing_docs)]

pub mod backend;
pub mod class;
mod compile;
mod diagnostic;
pub mod health_policy;
pub mod host;
pub mod incremental;
mod json;
pub mod kind;
mod lookup;
mod lower;
pub mod model;
pub mod path;
mod route;

pub use backend::Backend;
pub use compile::{compile, CompileOptions, Compiled};
pub use diagnostic::{Diagnostic, ObjectRef};
pub use health_policy::HealthPolicy;
pub use incremental::{IncrementalCompiler, Reuse};
pub use kind::Kind;
pub use lookup::{DefaultBackend, DefaultScope, Match, RouteTable};
pub use route::{
    PathType, PortRef, Route, ServiceRef, Tier, CONTROLLER_NAME, SSL_REDIRECT_ANNOTATION,
};
