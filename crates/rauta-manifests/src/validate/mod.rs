//! Validation beyond types: the API server's rules that matter to routing. Each function returns every
//! problem found (an object with any problem is dropped by the caller).

mod ingress;
mod names;
mod secret;
mod service;
mod slice;

pub(crate) use ingress::{ingress, ingress_class};
pub(crate) use secret::secret;
pub(crate) use service::service;
pub(crate) use slice::endpoint_slice;

use rauta_routes::model::ObjectMeta;
use rauta_routes::Kind;

/// One validation failure: the field path relative to the object, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub field: String,
    pub message: String,
}

/// Collects problems while walking an object.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub Vec<Problem>);

impl Problems {
    /// Records a problem at `field`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Records `message` at `field` if it is `Some` (the shape of the `names` checks).
    pub fn check(&mut self, field: impl Into<String>, message: Option<String>) {
        if let Some(message) = message {
            self.add(field, message);
        }
    }
}

/// `metadata.name` (required; the name format depends on the kind) and `metadata.namespace`.
pub(crate) fn metadata(kind: Kind, meta: &ObjectMeta, p: &mut Problems) {
    if meta.name.is_empty() {
        p.add("metadata.name", "required value");
    } else if kind == Kind::Service {
        p.check("metadata.name", names::dns1035_label(&meta.name));
    } else {
        p.check("metadata.name", names::dns1123_subdomain(&meta.name));
    }
    if let Some(ns) = meta.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        if kind.is_namespaced() {
            p.check("metadata.namespace", names::dns1123_label(ns));
        }
    }
}

/// A port number field: 1 to 65535.
pub(crate) fn port_number(field: impl Into<String>, port: i64, p: &mut Problems) {
    if !(1..=65535).contains(&port) {
        p.add(
            field,
            format!("must be between 1 and 65535, inclusive (got {port})"),
        );
    }
}

/// A `protocol` field, when set: TCP, UDP or SCTP.
pub(crate) fn protocol(field: impl Into<String>, protocol: Option<&str>, p: &mut Problems) {
    if let Some(proto) = protocol {
        if !matches!(proto, "TCP" | "UDP" | "SCTP") {
            p.add(
                field,
                format!("unknown variant `{proto}`, expected one of `TCP`, `UDP`, `SCTP`"),
            );
        }
    }
}
