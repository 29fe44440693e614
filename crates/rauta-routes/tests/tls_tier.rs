//! TLS coverage, tier eligibility and the `/routes` JSON.

mod common;
use common::*;
use rauta_routes::{PathType, Tier};

const TLS_INGRESS: &str = r#"
---
kind: Ingress
metadata: {name: secure, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  ingressClassName: rauta
  tls:
    - hosts: ["secure.example.com", "*.wild.example.com"]
      secretName: cert
  rules:
    - host: secure.example.com
      http:
        paths:
          - {path: /e, pathType: Exact, backend: {service: {name: a, port: {number: 80}}}}
    - host: api.wild.example.com
      http:
        paths:
          - {path: /p, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}
    - host: plain.example.com
      http:
        paths:
          - {path: /e, pathType: Exact, backend: {service: {name: a, port: {number: 80}}}}
          - {path: /p, pathType: Prefix, backend: {service: {name: a, port: {name: http}}}}
          - {path: "/r[0-9]", pathType: ImplementationSpecific, backend: {service: {name: a, port: {number: 80}}}}
"#;

#[test]
fn tls_hosts_and_tiers() {
    let c = compile_yaml(&[service("a", "127.0.0.1"), TLS_INGRESS.to_owned()].concat());
    assert_eq!(c.diagnostics, vec![]);
    let got: Vec<(String, &str, PathType, bool, Tier)> = c
        .table
        .routes()
        .iter()
        .map(|r| {
            (
                r.host.clone().unwrap(),
                r.path.as_str(),
                r.path_type,
                r.tls,
                r.tier,
            )
        })
        .collect();
    let want = vec![
        (
            "api.wild.example.com".to_owned(),
            "/p",
            PathType::Prefix,
            true,
            Tier::Userspace,
        ),
        (
            "plain.example.com".to_owned(),
            "/r[0-9]",
            PathType::Regex,
            false,
            Tier::Userspace,
        ),
        (
            "plain.example.com".to_owned(),
            "/e",
            PathType::Exact,
            false,
            Tier::Xdp,
        ),
        (
            "plain.example.com".to_owned(),
            "/p",
            PathType::Prefix,
            false,
            Tier::Tc,
        ),
        (
            "secure.example.com".to_owned(),
            "/e",
            PathType::Exact,
            true,
            Tier::Userspace,
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn tls_of_another_ingress_does_not_apply() {
    let other = r#"
---
kind: Ingress
metadata: {name: other}
spec:
  ingressClassName: rauta
  tls: [{hosts: [h]}]
"#;
    let yaml = [
        service("a", "127.0.0.1"),
        other.to_owned(),
        ingress("ing", "", &rule("h", "/", "Exact", "a")),
    ]
    .concat();
    let c = compile_yaml(&yaml);
    assert!(!c.table.routes()[0].tls);
    assert_eq!(c.table.routes()[0].tier, Tier::Xdp);
}

#[test]
fn routes_json_shape() {
    let c = compile_yaml(&[service("a", "127.0.0.1"), TLS_INGRESS.to_owned()].concat());
    let json = c.table.to_json();
    let routes = json["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 5);
    let secure = &routes[4];
    assert_eq!(secure["host"], "secure.example.com");
    assert_eq!(secure["path"], "/e");
    assert_eq!(secure["pathType"], "Exact");
    assert_eq!(secure["tier"], 3);
    assert_eq!(secure["tls"], true);
    assert_eq!(secure["ingress"], "default/secure");
    assert_eq!(secure["service"], "default/a:80");
    assert_eq!(secure["endpoints"], serde_json::json!(["127.0.0.1:8080"]));
    assert!(secure["problem"].is_null());
    assert_eq!(routes[3]["service"], "default/a:http");
    assert_eq!(routes[1]["pathType"], "ImplementationSpecific");
    assert_eq!(json["defaultBackends"], serde_json::json!([]));
}

/// The HTTP → HTTPS redirect follows TLS and the `rauta.io/ssl-redirect` annotation of the route's own
/// Ingress.
#[test]
fn ssl_redirect_is_on_for_tls_routes_unless_the_annotation_says_false() {
    let annotated = |name: &str, host: &str, value: Option<&str>| {
        let annotations = value
            .map(|v| format!("\n  annotations: {{rauta.io/ssl-redirect: \"{v}\"}}"))
            .unwrap_or_default();
        format!(
            r#"
---
kind: Ingress
metadata:
  name: {name}{annotations}
spec:
  ingressClassName: rauta
  tls: [{{hosts: ["{host}"], secretName: cert}}]
  rules:
    - host: {host}
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: a, port: {{number: 80}}}}}}}}
    - host: plain-{host}
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: a, port: {{number: 80}}}}}}}}
"#
        )
    };
    let yaml = [
        service("a", "127.0.0.1"),
        annotated("default-on", "on.example", None),
        annotated("explicit-on", "true.example", Some("true")),
        annotated("off", "off.example", Some("False")),
        annotated("typo", "typo.example", Some("nope")),
    ]
    .concat();
    let c = compile_yaml(&yaml);
    let redirect = |host: &str| {
        let route = c
            .table
            .routes()
            .iter()
            .find(|r| r.host.as_deref() == Some(host))
            .unwrap();
        (route.tls, route.ssl_redirect)
    };
    assert_eq!(redirect("on.example"), (true, true));
    assert_eq!(redirect("true.example"), (true, true));
    assert_eq!(redirect("off.example"), (true, false));
    assert_eq!(redirect("typo.example"), (true, true));
    // Without TLS there is nothing to redirect to.
    assert_eq!(redirect("plain-on.example"), (false, false));
    assert_eq!(c.diagnostics.len(), 1, "{:?}", c.diagnostics);
    assert_eq!(
        c.diagnostics[0].field,
        "metadata.annotations[rauta.io/ssl-redirect]"
    );
    let json = c.table.to_json();
    let shown = |host: &str| {
        json["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["host"] == host)
            .unwrap()["sslRedirect"]
            .clone()
    };
    assert_eq!(shown("on.example"), true);
    assert_eq!(shown("off.example"), false);
}

#[test]
fn exact_routes_to_backends_that_do_not_speak_http1_stay_in_userspace() {
    let h2c = service("g", "127.0.0.2").replace(
        "ports: [{name: http, port: 80}]",
        "ports: [{name: http, port: 80, appProtocol: kubernetes.io/h2c}]",
    );
    let ws = service("w", "127.0.0.3").replace(
        "ports: [{name: http, port: 80}]",
        "ports: [{name: http, port: 80, appProtocol: kubernetes.io/ws}]",
    );
    let ingress = r#"
---
kind: Ingress
metadata: {name: apps, namespace: default}
spec:
  ingressClassName: rauta
  rules:
    - host: plain.example.com
      http:
        paths:
          - {path: /grpc, pathType: Exact, backend: {service: {name: g, port: {number: 80}}}}
          - {path: /ws, pathType: Exact, backend: {service: {name: w, port: {number: 80}}}}
"#;
    let c = compile_yaml(&[h2c, ws, ingress.to_owned()].concat());
    assert_eq!(c.diagnostics, vec![]);
    let tier = |path: &str| {
        c.table
            .routes()
            .iter()
            .find(|r| r.path == path)
            .map(|r| r.tier)
    };
    assert_eq!(
        tier("/grpc"),
        Some(Tier::Userspace),
        "h2c: the kernel would send HTTP/1.1"
    );
    assert_eq!(
        tier("/ws"),
        Some(Tier::Xdp),
        "WebSocket backends speak HTTP/1.1"
    );
}
