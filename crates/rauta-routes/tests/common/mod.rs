//! Fixtures: Kubernetes objects written as multi-document YAML, as in a manifest file.
#![allow(dead_code)]

use rauta_routes::model::Inputs;
use rauta_routes::{compile, CompileOptions, Compiled, Match, PathType};

/// Parse `---`-separated objects by `kind` into compiler inputs.
pub fn inputs(yaml: &str) -> Inputs {
    let mut inputs = Inputs::default();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_owned();
        match kind.as_str() {
            "Ingress" => inputs
                .ingresses
                .push(serde_yaml::from_value(value).unwrap()),
            "IngressClass" => inputs
                .ingress_classes
                .push(serde_yaml::from_value(value).unwrap()),
            "Service" => inputs.services.push(serde_yaml::from_value(value).unwrap()),
            "EndpointSlice" => inputs
                .endpoint_slices
                .push(serde_yaml::from_value(value).unwrap()),
            "Secret" => inputs.secrets.push(serde_yaml::from_value(value).unwrap()),
            other => panic!("fixture has unknown kind {other:?}"),
        }
    }
    inputs
}

/// Compile with the default options (class `rauta`).
pub fn compile_yaml(yaml: &str) -> Compiled {
    compile(&inputs(yaml), &CompileOptions::default())
}

/// A Service `name` in `default` with one port 80 named `http`, and a slice with one ready endpoint
/// `ip:8080` — enough for a route to have a working backend.
pub fn service(name: &str, ip: &str) -> String {
    format!(
        r#"
---
kind: Service
metadata: {{name: {name}}}
spec:
  ports: [{{name: http, port: 80}}]
---
kind: EndpointSlice
metadata:
  name: {name}-abc
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints:
  - addresses: ["{ip}"]
"#
    )
}

/// An Ingress of class rauta in `default` with the given rules (YAML list under `rules:`).
pub fn ingress(name: &str, timestamp: &str, rules: &str) -> String {
    format!(
        r#"
---
kind: Ingress
metadata: {{name: {name}, creationTimestamp: "{timestamp}"}}
spec:
  ingressClassName: rauta
  rules:
{rules}
"#
    )
}

/// One rule line: `host` (empty: no host), one path of `ty` to service `svc` port 80.
pub fn rule(host: &str, path: &str, ty: &str, svc: &str) -> String {
    let host = if host.is_empty() {
        String::new()
    } else {
        format!("host: \"{host}\", ")
    };
    format!(
        "  - {{{host}http: {{paths: [{{path: \"{path}\", pathType: {ty}, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}]}}}}\n"
    )
}

/// What a lookup resolved to, in a form easy to compare: `route <svc> <type> <path>`,
/// `default <svc>` or `404`.
pub fn resolve(c: &Compiled, host: &str, path: &str) -> String {
    match c.table.lookup(host, path) {
        Match::Route(r) => {
            let ty = match r.path_type {
                PathType::Exact => "Exact",
                PathType::Prefix => "Prefix",
                PathType::Regex => "Regex",
            };
            format!("route {} {ty} {}", r.backend.service.name, r.path)
        }
        Match::DefaultBackend(b) => format!("default {}", b.service.name),
        Match::NotFound => "404".into(),
    }
}
