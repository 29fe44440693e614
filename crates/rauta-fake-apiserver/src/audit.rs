//! A log of the resource requests the fake served, in RBAC terms (verb, group, resource, subresource,
//! namespace), so that a test can check a ClusterRole against what a client really did.

/// One resource request, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch` or `delete`.
    pub verb: &'static str,
    /// API group ("" for core).
    pub group: &'static str,
    /// Plural resource name.
    pub resource: &'static str,
    /// `status`, or empty.
    pub subresource: &'static str,
    /// The namespace of the path; `None` for cluster-wide requests.
    pub namespace: Option<String>,
}
