//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use rauta_manifests::{ManifestError, ParsedManifests};

/// The one error of a parse, asserting there is exactly one.
pub fn only_error(parsed: &ParsedManifests) -> &ManifestError {
    assert_eq!(parsed.errors.len(), 1, "errors: {:#?}", parsed.errors);
    &parsed.errors[0]
}

/// `(document, field)` of every error, for compact assertions.
pub fn error_fields(parsed: &ParsedManifests) -> Vec<(usize, Option<&str>)> {
    parsed
        .errors
        .iter()
        .map(|e| (e.document, e.field.as_deref()))
        .collect()
}

/// Names of the parsed Ingresses.
pub fn ingress_names(parsed: &ParsedManifests) -> Vec<&str> {
    parsed
        .inputs
        .ingresses
        .iter()
        .map(|i| i.metadata.name.as_str())
        .collect()
}

/// Names of the parsed Services.
pub fn service_names(parsed: &ParsedManifests) -> Vec<&str> {
    parsed
        .inputs
        .services
        .iter()
        .map(|s| s.metadata.name.as_str())
        .collect()
}

/// An Ingress document with one path, for tests that vary a single line.
pub fn ingress_with_path(name: &str, path_lines: &str) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
spec:
  ingressClassName: rauta
  rules:
  - host: web.example.com
    http:
      paths:
{path_lines}
"#
    )
}
