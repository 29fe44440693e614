//! Validation beyond types: each test breaks one rule and checks the exact field path, the document
//! index, and that the valid documents beside it survive.

mod common;
use common::*;
use rauta_manifests::parse_manifest;

const GOOD_SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: ok\nspec:\n  ports:\n  - port: 80\n";

/// `doc` as document 1 between two good Services.
fn sandwich(doc: &str) -> String {
    format!(
        "{GOOD_SERVICE}---\n{doc}---\n{}",
        GOOD_SERVICE.replace("name: ok", "name: ok2")
    )
}

fn backend(number: &str) -> String {
    format!(
        "        backend:\n          service:\n            name: web\n            port:\n{number}"
    )
}

#[test]
fn unknown_path_type() {
    let doc = ingress_with_path(
        "web",
        &format!(
            "      - path: /\n        pathType: Exect\n{}",
            backend("              number: 80\n")
        ),
    );
    let parsed = parse_manifest("examples/app.yaml", &sandwich(&doc));
    let e = only_error(&parsed);
    assert_eq!(
        e.to_string(),
        "examples/app.yaml: document 1 (Ingress default/web): field spec.rules[0].http.paths[0].pathType: unknown variant `Exect`, expected one of `Exact`, `Prefix`, `ImplementationSpecific`"
    );
    assert!(parsed.inputs.ingresses.is_empty());
    assert_eq!(service_names(&parsed), ["ok", "ok2"]);
}

#[test]
fn missing_path_type() {
    let doc = ingress_with_path(
        "web",
        &format!("      - path: /\n{}", backend("              number: 80\n")),
    );
    let parsed = parse_manifest("a.yaml", &sandwich(&doc));
    assert_eq!(
        error_fields(&parsed),
        [(1, Some("spec.rules[0].http.paths[0].pathType"))]
    );
    assert_eq!(parsed.errors[0].message, "required value");
}

#[test]
fn prefix_and_exact_paths_must_be_absolute() {
    for path_type in ["Prefix", "Exact"] {
        let doc = ingress_with_path(
            "web",
            &format!(
                "      - path: api\n        pathType: {path_type}\n{}",
                backend("              number: 80\n")
            ),
        );
        let parsed = parse_manifest("a.yaml", &sandwich(&doc));
        assert_eq!(
            error_fields(&parsed),
            [(1, Some("spec.rules[0].http.paths[0].path"))]
        );
        assert!(parsed.errors[0]
            .message
            .contains("must be an absolute path"));
    }
    // ImplementationSpecific paths are regexes: not checked here.
    let doc = ingress_with_path(
        "web",
        &format!(
            "      - path: \"api/(v1|v2\"\n        pathType: ImplementationSpecific\n{}",
            backend("              number: 80\n")
        ),
    );
    let parsed = parse_manifest("a.yaml", &doc);
    assert!(parsed.errors.is_empty(), "{:#?}", parsed.errors);
}

#[test]
fn port_number_of_wrong_type() {
    let doc = ingress_with_path(
        "web",
        &format!(
            "      - path: /\n        pathType: Prefix\n{}",
            backend("              number: \"abc\"\n")
        ),
    );
    let parsed = parse_manifest("a.yaml", &sandwich(&doc));
    let e = only_error(&parsed);
    assert_eq!(e.document, 1);
    assert_eq!(
        e.field.as_deref(),
        Some("spec.rules[0].http.paths[0].backend.service.port.number")
    );
    assert!(
        e.message
            .contains("invalid type: string \"abc\", expected i32"),
        "{}",
        e.message
    );
    assert_eq!(e.name.as_deref(), Some("default/web"));
}

#[test]
fn backend_port_out_of_range() {
    let doc = ingress_with_path(
        "web",
        &format!(
            "      - path: /\n        pathType: Prefix\n{}",
            backend("              number: 0\n")
        ),
    );
    let parsed = parse_manifest("a.yaml", &doc);
    assert_eq!(
        error_fields(&parsed),
        [(
            0,
            Some("spec.rules[0].http.paths[0].backend.service.port.number")
        )]
    );
}

#[test]
fn backend_port_needs_exactly_one_of_number_and_name() {
    let both = backend("              number: 80\n              name: http\n");
    let neither = "        backend:\n          service:\n            name: web\n".to_string();
    for b in [both, neither] {
        let doc = ingress_with_path(
            "web",
            &format!("      - path: /\n        pathType: Prefix\n{b}"),
        );
        let parsed = parse_manifest("a.yaml", &doc);
        assert_eq!(
            error_fields(&parsed),
            [(0, Some("spec.rules[0].http.paths[0].backend.service.port"))],
            "{b}"
        );
    }
}

#[test]
fn backend_needs_service_name() {
    let doc = ingress_with_path(
        "web",
        "      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            port: {number: 80}\n",
    );
    let parsed = parse_manifest("a.yaml", &doc);
    assert_eq!(
        error_fields(&parsed),
        [(0, Some("spec.rules[0].http.paths[0].backend.service.name"))]
    );
    let doc = ingress_with_path(
        "web",
        "      - path: /\n        pathType: Prefix\n        backend: {}\n",
    );
    let parsed = parse_manifest("a.yaml", &doc);
    assert_eq!(
        error_fields(&parsed),
        [(0, Some("spec.rules[0].http.paths[0].backend"))]
    );
}

#[test]
fn resource_backends_pass_to_the_compiler() {
    let doc = ingress_with_path(
        "web",
        "      - path: /\n        pathType: Prefix\n        backend:\n          resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: static}\n",
    );
    let parsed = parse_manifest("a.yaml", &doc);
    assert!(parsed.errors.is_empty(), "{:#?}", parsed.errors);
    assert_eq!(ingress_names(&parsed), ["web"]);
}

#[test]
fn every_problem_of_an_object_is_reported() {
    let doc = ingress_with_path(
        "web",
        &format!(
            "      - path: a\n        pathType: Exact\n{}      - path: /b\n        pathType: Prefixx\n{}",
            backend("              number: 80\n"),
            backend("              number: 99999\n")
        ),
    );
    let parsed = parse_manifest("a.yaml", &doc);
    assert_eq!(
        error_fields(&parsed),
        [
            (0, Some("spec.rules[0].http.paths[0].path")),
            (0, Some("spec.rules[0].http.paths[1].pathType")),
            (
                0,
                Some("spec.rules[0].http.paths[1].backend.service.port.number")
            ),
        ]
    );
}

#[test]
fn missing_and_invalid_names() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: default\nspec:\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: Web_1\nspec:\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: 1web\nspec:\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: 1web.tls\n  namespace: Bad_NS\nstringData: {a: b}\n";
    let parsed = parse_manifest("n.yaml", text);
    assert_eq!(
        error_fields(&parsed),
        [
            (0, Some("metadata.name")),
            (1, Some("metadata.name")),
            (2, Some("metadata.name")), // Service names are DNS-1035: no leading digit
            (3, Some("metadata.namespace")),
        ]
    );
    assert_eq!(parsed.errors[0].message, "required value");
    assert_eq!(parsed.errors[0].name, None);
    assert_eq!(parsed.errors[1].name.as_deref(), Some("default/Web_1"));
    assert!(parsed.inputs.services.is_empty());
    assert!(parsed.inputs.secrets.is_empty());
}

#[test]
fn ingress_needs_rules_or_default_backend() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: empty}\nspec: {ingressClassName: rauta}\n";
    let parsed = parse_manifest("a.yaml", text);
    assert_eq!(error_fields(&parsed), [(0, Some("spec"))]);
}

#[test]
fn bad_hosts() {
    let doc = ingress_with_path(
        "web",
        &format!(
            "      - path: /\n        pathType: Prefix\n{}",
            backend("              number: 80\n")
        ),
    )
    .replace("host: web.example.com", "host: web.*.example.com");
    let parsed = parse_manifest("a.yaml", &doc);
    assert_eq!(error_fields(&parsed), [(0, Some("spec.rules[0].host"))]);
    let ok = doc.replace("web.*.example.com", "\"*.example.com\"");
    assert!(parse_manifest("a.yaml", &ok).errors.is_empty());
}

#[test]
fn service_ports() {
    let text = r#"apiVersion: v1
kind: Service
metadata: {name: multi}
spec:
  ports:
  - {name: http, port: 80, targetPort: http}
  - {port: 443, targetPort: 70000}
  - {name: http, port: 8080, protocol: HTTP}
"#;
    let parsed = parse_manifest("s.yaml", text);
    assert_eq!(
        error_fields(&parsed),
        [
            (0, Some("spec.ports[1].name")),
            (0, Some("spec.ports[1].targetPort")),
            (0, Some("spec.ports[2].name")),
            (0, Some("spec.ports[2].protocol")),
        ]
    );
    assert!(parsed.errors[2].message.contains("duplicate port name"));
    assert!(parsed.inputs.services.is_empty());
}

#[test]
fn service_port_missing_is_out_of_range() {
    let parsed = parse_manifest(
        "s.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - name: http\n",
    );
    assert_eq!(error_fields(&parsed), [(0, Some("spec.ports[0].port"))]);
}

#[test]
fn ipv6_endpoint_slice() {
    let text = r#"apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-v6
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv6
endpoints:
- addresses: ["2001:db8::1"]
- addresses: ["fd00:10:244::5"]
  conditions: {ready: true, serving: true, terminating: false}
ports:
- {name: http, port: 8080, protocol: TCP, appProtocol: http}
"#;
    let parsed = parse_manifest("v6.yaml", text);
    assert!(parsed.errors.is_empty(), "{:#?}", parsed.errors);
    let slice = &parsed.inputs.endpoint_slices[0];
    assert_eq!(slice.address_type, "IPv6");
    assert_eq!(slice.endpoints[1].addresses, ["fd00:10:244::5"]);
}

#[test]
fn endpoint_addresses_must_match_the_family() {
    let text = r#"apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: mixed}
addressType: IPv6
endpoints:
- addresses: ["2001:db8::1", "10.0.0.1"]
- addresses: []
ports:
- {port: 8080}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: v4}
addressType: IPv4
endpoints:
- addresses: ["10.0.0.256"]
ports:
- {port: 0}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: weird}
addressType: IPX
endpoints:
- addresses: ["10.0.0.1"]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: fine}
addressType: IPv4
endpoints:
- addresses: ["198.18.0.2"]
ports:
- {name: "", port: 80}
"#;
    let parsed = parse_manifest("e.yaml", text);
    assert_eq!(
        error_fields(&parsed),
        [
            (0, Some("endpoints[0].addresses[1]")),
            (0, Some("endpoints[1].addresses")),
            (1, Some("endpoints[0].addresses[0]")),
            (1, Some("ports[0].port")),
            (2, Some("addressType")),
        ]
    );
    assert!(
        parsed.errors[0].message.contains("IPv6"),
        "{}",
        parsed.errors[0].message
    );
    assert!(parsed.errors[4].message.contains("unknown variant `IPX`"));
    let names: Vec<&str> = parsed
        .inputs
        .endpoint_slices
        .iter()
        .map(|s| s.metadata.name.as_str())
        .collect();
    assert_eq!(names, ["fine"]);
}

#[test]
fn tls_secrets() {
    let text = r#"apiVersion: v1
kind: Secret
metadata: {name: plain-tls}
type: kubernetes.io/tls
stringData:
  tls.crt: |
    -----BEGIN CERTIFICATE-----
    MIIB
    -----END CERTIFICATE-----
  tls.key: |
    -----BEGIN PRIVATE KEY-----
    MIIE
    -----END PRIVATE KEY-----
---
apiVersion: v1
kind: Secret
metadata: {name: half-tls}
type: kubernetes.io/tls
data:
  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
---
apiVersion: v1
kind: Secret
metadata: {name: not-base64}
data:
  tls.crt: "this is not base64!"
  "bad/key": YQ==
"#;
    let parsed = parse_manifest("tls.yaml", text);
    assert_eq!(
        error_fields(&parsed),
        [
            (1, Some("data[tls.key]")),
            (2, Some("data[bad/key]")),
            (2, Some("data[tls.crt]")),
        ]
    );
    assert_eq!(parsed.inputs.secrets.len(), 1);
    let s = &parsed.inputs.secrets[0];
    assert_eq!(s.metadata.name, "plain-tls");
    assert!(s.string_data["tls.crt"].starts_with("-----BEGIN CERTIFICATE-----\n"));
}

#[test]
fn ingress_class_needs_controller() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: rauta, namespace: ignored}\nspec: {}\n";
    let parsed = parse_manifest("c.yaml", text);
    let e = only_error(&parsed);
    assert_eq!(e.field.as_deref(), Some("spec.controller"));
    // Cluster-scoped: shown without a namespace.
    assert_eq!(e.name.as_deref(), Some("rauta"));
}

#[test]
fn many_problems_are_capped() {
    let addresses: Vec<String> = (0..30).map(|i| format!("\"bad-{i}\"")).collect();
    let text = format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: many}}\naddressType: IPv4\nendpoints:\n- addresses: [{}]\n",
        addresses.join(", ")
    );
    let parsed = parse_manifest("m.yaml", &text);
    assert_eq!(parsed.errors.len(), 11);
    assert!(
        parsed.errors[10].message.starts_with("20 more problems"),
        "{}",
        parsed.errors[10]
    );
}
