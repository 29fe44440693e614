//! Route tables for the kernel's route maps, compiled from inline YAML the way the controller compiles
//! manifests (`rauta_routes::compile`).

use rauta_routes::{compile, model::Inputs, CompileOptions, RouteTable};

/// Compiles `---`-separated Ingress, Service and EndpointSlice objects with the default options.
pub fn table(yaml: &str) -> RouteTable {
    let mut inputs = Inputs::default();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
        match value.get("kind").and_then(|k| k.as_str()).unwrap() {
            "Ingress" => inputs
                .ingresses
                .push(serde_yaml::from_value(value).unwrap()),
            "Service" => inputs.services.push(serde_yaml::from_value(value).unwrap()),
            "EndpointSlice" => inputs
                .endpoint_slices
                .push(serde_yaml::from_value(value).unwrap()),
            other => panic!("unknown kind {other}"),
        }
    }
    compile(&inputs, &CompileOptions::default()).table
}

/// A Service `name` (port 80, named `http`) in `default` with one ready endpoint per address, port 8080.
pub fn service(name: &str, addresses: &[&str]) -> String {
    let endpoints: Vec<String> = addresses
        .iter()
        .map(|a| format!("{{addresses: [\"{a}\"]}}"))
        .collect();
    format!(
        r#"
---
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: http, port: 80}}]
---
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints: [{}]
"#,
        endpoints.join(", ")
    )
}
