//! Kubernetes YAML manifests to route-compiler inputs ([`rauta_routes::model::Inputs`]).
//!
//! Pure: the binary reads the files and hands over `(source name, text)`; nothing here touches the file
//! system. One file holds any number of YAML documents separated by `---`; each becomes zero or more
//! objects:
//! - `networking.k8s.io/v1` `Ingress` and `IngressClass`, `v1` `Service` and `Secret`,
//!   `discovery.k8s.io/v1` `EndpointSlice` are decoded, validated and kept;
//! - `v1` `List` (what `kubectl get -o yaml` prints) and the typed lists (`IngressList`, ...) contribute
//!   each of their `items`;
//! - every other kind, or a known kind at another apiVersion (`extensions/v1beta1` Ingress), is skipped
//!   and recorded in [`ParsedManifests::skipped`];
//! - empty documents are ignored (they still count for document numbering).
//!
//! Problems never abort a file: a YAML syntax error, a wrongly typed field or an object that fails
//! validation becomes a [`ManifestError`] naming the file, the 0-based document index, the object and
//! the field path (`spec.rules[0].http.paths[0].pathType`), and the object is dropped while the other
//! documents are kept. Documents are split on `---` lines before parsing, so a syntax error loses only
//! its own document, not the ones after it.
//!
//! Validation follows the API server where it matters to routing (names, path types, backend ports,
//! port ranges, endpoint address families, TLS secret keys), so that a manifest RAUTA accepts is one
//! `kubectl apply` would accept too. Semantics that need other objects (a missing Service, a bad regex)
//! are the compiler's diagnostics, not errors here.
//!
//! A field set to `null` (or left empty, `labels:`) counts as absent, as the API server decodes it.
//!
//! An object defined twice (same kind, namespace and name), in one file or across merged files, keeps
//! the later definition and records an error naming the first.
#![forbid(unsafe_code)]

mod decode;
mod error;
mod parsed;
mod split;
mod validate;

pub use error::{ManifestError, SkippedDocument};
pub use parsed::{parse_manifest, Origin, ParsedManifests};
pub use rauta_routes::Kind;
