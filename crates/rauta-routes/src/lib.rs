//! The route compiler: Kubernetes objects in, an immutable [`RouteTable`] out.
//!
//! Pure and IO-free: no files, no network, no clock, no async. The same function serves standalone mode
//! (objects parsed from manifest files by `rauta-manifests`) and Kubernetes mode (objects from watchers),
//! and its output is swapped into the proxy and written to the BPF maps as one snapshot.

pub mod model;
mod table;

pub use table::*;
