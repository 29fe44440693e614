//! Multi-document files, Lists, syntax errors, skipped kinds: what survives and where errors point.

mod common;
use common::*;
use rauta_manifests::parse_manifest;

const APP: &str = r#"# The demo application.
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
    appProtocol: kubernetes.io/h2c
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: web
        image: example/web:1
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  namespace: shop
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
- addresses: ["10.1.2.3"]
  conditions:
    ready: true
  nodeName: node-a
- addresses: ["10.1.2.4"]
  conditions:
    ready: false
    terminating: true
ports:
- name: http
  port: 8080
  protocol: TCP
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations:
    rauta.io/tier: "3"
spec:
  ingressClassName: rauta
  tls:
  - hosts: [shop.example.com]
    secretName: shop-tls
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              name: http
      - path: /api/v[0-9]+
        pathType: ImplementationSpecific
        backend:
          service:
            name: web
            port:
              number: 80
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: rauta
spec:
  controller: rauta.io/ingress-controller
---
apiVersion: v1
kind: Secret
metadata:
  name: shop-tls
  namespace: shop
type: kubernetes.io/tls
data:
  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
  tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==
"#;

#[test]
fn realistic_file_parses_completely() {
    let parsed = parse_manifest("app.yaml", APP);
    assert!(parsed.errors.is_empty(), "{:#?}", parsed.errors);
    let i = &parsed.inputs;
    assert_eq!(service_names(&parsed), ["web"]);
    assert_eq!(i.services[0].metadata.namespace(), "shop");
    assert_eq!(i.services[0].spec.ports[0].port, 80);
    assert_eq!(
        i.services[0].spec.ports[0].app_protocol.as_deref(),
        Some("kubernetes.io/h2c")
    );
    assert_eq!(i.endpoint_slices.len(), 1);
    assert_eq!(
        i.endpoint_slices[0].endpoints[1].conditions.ready,
        Some(false)
    );
    assert_eq!(i.endpoint_slices[0].ports[0].port, Some(8080));
    assert_eq!(ingress_names(&parsed), ["web"]);
    let paths = &i.ingresses[0].spec.rules[0].http.as_ref().unwrap().paths;
    assert_eq!(paths.len(), 2);
    assert_eq!(
        paths[1].path_type.as_deref(),
        Some("ImplementationSpecific")
    );
    assert_eq!(
        i.ingresses[0]
            .metadata
            .annotations
            .get("rauta.io/tier")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        i.ingress_classes[0].spec.controller.as_deref(),
        Some("rauta.io/ingress-controller")
    );
    assert_eq!(i.secrets[0].type_.as_deref(), Some("kubernetes.io/tls"));
    // The Deployment is document 1 and is skipped, not an error.
    assert_eq!(parsed.skipped.len(), 1);
    let s = &parsed.skipped[0];
    assert_eq!(s.source_name, "app.yaml");
    assert_eq!(s.document, 1);
    assert_eq!(s.api_version.as_deref(), Some("apps/v1"));
    assert_eq!(s.kind.as_deref(), Some("Deployment"));
    assert_eq!(s.to_string(), "document 1 (apps/v1 Deployment web)");
}

#[test]
fn old_ingress_api_version_is_skipped() {
    let text = r#"apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: legacy
spec:
  backend:
    serviceName: web
    servicePort: 80
"#;
    let parsed = parse_manifest("old.yaml", text);
    assert!(parsed.errors.is_empty());
    assert!(parsed.inputs.ingresses.is_empty());
    assert_eq!(parsed.skipped.len(), 1);
    assert_eq!(
        parsed.skipped[0].api_version.as_deref(),
        Some("extensions/v1beta1")
    );
    assert_eq!(parsed.skipped[0].kind.as_deref(), Some("Ingress"));
}

#[test]
fn empty_documents_and_comments_are_ignored_but_counted() {
    let text = "---\n# nothing here\n---\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: abc\n";
    let parsed = parse_manifest("empty.yaml", text);
    // Documents: 0 (comment only), 1 (empty), 2 (the Service).
    let e = only_error(&parsed);
    assert_eq!(e.document, 2);
    assert_eq!(e.field.as_deref(), Some("spec.ports[0].port"));
    assert!(parse_manifest("x.yaml", "").errors.is_empty());
    assert!(parse_manifest("x.yaml", "# only a comment\n")
        .errors
        .is_empty());
    assert!(parse_manifest("x.yaml", "---\n---\n...\n")
        .errors
        .is_empty());
}

#[test]
fn bad_indentation_loses_only_its_document() {
    let text = r#"apiVersion: v1
kind: Service
metadata:
  name: first
spec:
  ports:
  - port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: broken
 namespace: default
spec:
  ports:
  - port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: last
spec:
  ports:
  - port: 80
"#;
    let parsed = parse_manifest("indent.yaml", text);
    let e = only_error(&parsed);
    assert_eq!(e.document, 1);
    assert_eq!(e.field, None);
    assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
    // The bad line is line 13 of the file (line 6 of the document); the mapping it breaks starts at
    // line 9 of the file.
    assert!(e.message.contains("at line 13 column 2"), "{}", e.message);
    assert!(e.message.contains("at line 9 column 1"), "{}", e.message);
    assert_eq!(service_names(&parsed), ["first", "last"]);
}

#[test]
fn unclosed_flow_sequence_is_reported_and_later_documents_survive() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 80}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: 81}]}\n";
    let parsed = parse_manifest("flow.yaml", text);
    let e = only_error(&parsed);
    assert_eq!(e.document, 0);
    assert_eq!(
        e.to_string().split(": ").take(2).collect::<Vec<_>>(),
        ["flow.yaml", "document 0"]
    );
    assert_eq!(service_names(&parsed), ["b"]);
}

#[test]
fn tab_indentation_is_a_syntax_error() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n\tname: tabbed\n";
    let parsed = parse_manifest("tabs.yaml", text);
    let e = only_error(&parsed);
    assert_eq!(e.document, 0);
    assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
    assert!(parsed.inputs.services.is_empty());
}

#[test]
fn kubectl_list_items_are_each_processed() {
    let text = r#"apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: v1
  kind: Service
  metadata:
    name: one
    namespace: default
    resourceVersion: "1234"
    uid: 0b1c7a3e-0000-4000-8000-000000000001
    creationTimestamp: "2024-01-02T03:04:05Z"
  spec:
    clusterIP: 10.96.0.10
    type: ClusterIP
    ports:
    - port: 80
      protocol: TCP
      targetPort: 8080
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: one
- apiVersion: v1
  kind: Service
  metadata:
    name: two
  spec:
    ports:
    - port: 70000
- apiVersion: v1
  kind: Service
  metadata:
    name: three
  spec:
    ports:
    - port: 443
"#;
    let parsed = parse_manifest("get.yaml", text);
    assert_eq!(service_names(&parsed), ["one", "three"]);
    let one = &parsed.inputs.services[0];
    assert_eq!(one.metadata.resource_version.as_deref(), Some("1234"));
    assert_eq!(one.spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(one.spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    let e = only_error(&parsed);
    assert_eq!(e.document, 0);
    assert_eq!(e.kind.as_deref(), Some("Service"));
    assert_eq!(e.name.as_deref(), Some("default/two"));
    assert_eq!(e.field.as_deref(), Some("items[2].spec.ports[0].port"));
    assert_eq!(
        e.to_string(),
        "get.yaml: document 0 (Service default/two): field items[2].spec.ports[0].port: must be between 1 and 65535, inclusive (got 70000)"
    );
    assert_eq!(parsed.skipped.len(), 1);
    assert_eq!(parsed.skipped[0].item, Some(1));
    assert_eq!(
        parsed
            .origin(rauta_manifests::Kind::Service, "default", "three")
            .unwrap()
            .item,
        Some(3)
    );
}

#[test]
fn typed_list_items_may_omit_kind() {
    let text = r#"apiVersion: networking.k8s.io/v1
kind: IngressList
items:
- metadata: {name: a, namespace: default}
  spec:
    defaultBackend:
      service: {name: web, port: {number: 80}}
"#;
    let parsed = parse_manifest("typed.yaml", text);
    assert!(parsed.errors.is_empty(), "{:#?}", parsed.errors);
    assert_eq!(ingress_names(&parsed), ["a"]);
}

#[test]
fn list_with_non_sequence_items() {
    let parsed = parse_manifest("l.yaml", "apiVersion: v1\nkind: List\nitems: {a: 1}\n");
    let e = only_error(&parsed);
    assert_eq!(e.field.as_deref(), Some("items"));
    let parsed = parse_manifest("l.yaml", "apiVersion: v1\nkind: List\nitems:\n- 42\n");
    assert_eq!(only_error(&parsed).field.as_deref(), Some("items[0]"));
}

#[test]
fn document_that_is_not_an_object() {
    let parsed = parse_manifest("s.yaml", "just a string\n---\n- a\n- b\n");
    assert_eq!(error_fields(&parsed), [(0, None), (1, None)]);
    assert!(parsed.errors[0].message.contains("expected an object"));
}

#[test]
fn missing_kind_or_api_version() {
    let parsed = parse_manifest(
        "k.yaml",
        "apiVersion: v1\nmetadata: {name: x}\n---\nkind: Service\nmetadata: {name: y}\n",
    );
    assert_eq!(
        error_fields(&parsed),
        [(0, Some("kind")), (1, Some("apiVersion"))]
    );
    assert_eq!(parsed.errors[1].kind.as_deref(), Some("Service"));
    assert_eq!(parsed.errors[1].name.as_deref(), Some("y"));
}

#[test]
fn wrong_type_for_a_whole_section() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: 80\n";
    let e = only_error(&parse_manifest("t.yaml", text)).clone();
    assert_eq!(e.field.as_deref(), Some("spec.ports"));
    assert!(e.message.contains("expected a sequence"), "{}", e.message);
    assert_eq!(e.name.as_deref(), Some("default/web"));
}

#[test]
fn nulls_are_treated_as_absent() {
    let text = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
  labels: ~
spec:
  tls:
  rules:
  - host:
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
"#;
    let parsed = parse_manifest("null.yaml", text);
    assert!(parsed.errors.is_empty(), "{:#?}", parsed.errors);
    assert_eq!(parsed.inputs.ingresses[0].spec.rules[0].host, None);
}

#[test]
fn json_documents_work_too() {
    let text = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}"#;
    let parsed = parse_manifest("svc.json", text);
    assert!(parsed.errors.is_empty(), "{:#?}", parsed.errors);
    assert_eq!(service_names(&parsed), ["web"]);
}

#[test]
fn windows_line_endings() {
    let text = "apiVersion: v1\r\nkind: Service\r\nmetadata:\r\n  name: a\r\nspec:\r\n  ports:\r\n  - port: 80\r\n---\r\napiVersion: v1\r\nkind: Service\r\nmetadata:\r\n  name: b\r\nspec:\r\n  ports:\r\n  - port: 81\r\n";
    let parsed = parse_manifest("crlf.yaml", text);
    assert!(parsed.errors.is_empty(), "{:#?}", parsed.errors);
    assert_eq!(service_names(&parsed), ["a", "b"]);
}
