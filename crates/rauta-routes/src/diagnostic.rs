//! Problems found while compiling. The compiler never fails as a whole: it drops the broken piece and
//! says which object and which field it came from.

use crate::model::ObjectMeta;

/// Which object a diagnostic (or a route) is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectRef {
    /// Kubernetes kind, e.g. `Ingress`, `EndpointSlice`.
    pub kind: &'static str,
    /// Namespace (`default` when the object has none).
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl ObjectRef {
    /// A reference to an object of `kind` with `meta`.
    pub fn new(kind: &'static str, meta: &ObjectMeta) -> Self {
        Self {
            kind,
            namespace: meta.namespace().to_owned(),
            name: meta.name.clone(),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    /// `namespace/name`, the form `kubectl` and the `/routes` endpoint use.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A problem found while compiling; the rest of the configuration keeps working.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The object the problem is in.
    pub object: ObjectRef,
    /// JSON-path-like field, e.g. `spec.rules[0].http.paths[1].pathType`.
    pub field: String,
    /// What is wrong and what the compiler did about it.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}: {}",
            self.object.kind, self.object, self.field, self.message
        )
    }
}
