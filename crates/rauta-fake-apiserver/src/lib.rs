//! An in-repo fake kube-apiserver for tests: it speaks the real Kubernetes HTTP API (the paths, verbs,
//! content types and JSON a v1.30+ kube-apiserver serves) for the kinds RAUTA uses, so that the real
//! `rauta` binary can be run against it through an ordinary kubeconfig, with no mocked client.
//!
//! Served:
//! - discovery: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`;
//! - `networking.k8s.io/v1` Ingress (with `/status`) and IngressClass (cluster-scoped), `v1` Service (with
//!   `/status`), Secret and Event, `discovery.k8s.io/v1` EndpointSlice, `coordination.k8s.io/v1` Lease,
//!   `events.k8s.io/v1` Event;
//! - per kind: list (namespaced and across all namespaces; `labelSelector`, `fieldSelector` with `=`,
//!   `==`, `!=`), watch (`?watch=1` or `watch=true`: ADDED/MODIFIED/DELETED lines from a
//!   `resourceVersion`, BOOKMARK lines when `allowWatchBookmarks=true`, `timeoutSeconds`), get, create,
//!   update (PUT, with `metadata.resourceVersion` as a precondition: 409 Conflict), delete, and PATCH as
//!   `application/merge-patch+json`, `application/strategic-merge-patch+json` and
//!   `application/apply-patch+yaml` (server-side apply; `fieldManager` required; creates a missing object).
//!
//! Faithful where it matters to a controller:
//! - one global `resourceVersion` counter for every object, as etcd's revision; an update that changes
//!   nothing is a no-op that keeps the version and emits no event, as a real server does;
//! - a bounded history of changes ([`Config::history`]): a watch from a version older than what the
//!   history still covers gets an `ERROR` event with a `410 Gone` Status (reason `Expired`), as the real
//!   watch cache does, so a client must relist;
//! - the status subresource: writes to the main resource keep the old status, writes to `/status` keep the
//!   old everything else;
//! - validation a real API server performs on these kinds (422 Invalid, with causes): names, Ingress path
//!   types and backends, Service ports, EndpointSlice address types and addresses (loopback, link-local
//!   and unspecified addresses are rejected, so end-to-end tests put backends in network namespaces),
//!   `kubernetes.io/tls` Secret keys; `stringData` is merged into base64 `data`.
//!
//! Deliberate simplifications (documented so nobody mistakes them for the real thing): lists ignore
//! `limit` and return everything in one page (a real server may do the same); strategic merge patch is
//! applied as a JSON merge patch (lists are replaced, not merged by key); server-side apply merges the
//! applied configuration into the object and does not track field ownership, so it never removes fields
//! that an earlier apply set; JSON patch is answered `415 Unsupported Media Type`.
//!
//! Every resource request is logged in RBAC terms ([`Store::requests`]), so that a test can check a
//! ClusterRole against what a client really did.
//!
//! Restarts: [`FakeApiServer::stop`] closes the listener and cuts every open connection (watches end
//! mid-stream, as when a real API server restarts); [`FakeApiServer::restart`] listens again on the same
//! address with the SAME state (objects, version counter and history), as a real API server comes back
//! with etcd's data. A test that wants a fresh server starts a new one.
#![forbid(unsafe_code)]

mod audit;
mod client;
mod encode;
mod error;
mod patch;
mod resources;
mod selector;
mod server;
mod store;
mod validate;
mod watch;

pub use audit::ApiRequest;
pub use client::{Client, ClientError, Response};
pub use resources::{Resource, RESOURCES};
pub use server::{Config, FakeApiServer};
pub use store::Store;

/// Write a kubeconfig pointing at `server` (e.g. `http://127.0.0.1:PORT`) with no credentials, the form
/// the tests hand to `rauta --kubeconfig`.
pub fn kubeconfig(server: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
    )
}
