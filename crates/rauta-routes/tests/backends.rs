//! Backend resolution: ports by number and name, EndpointSlice port matching, readiness, IPv6, FQDN,
//! missing pieces, sharing, and the Maglev pick.

mod common;
use common::*;
use std::net::SocketAddr;
use std::sync::Arc;

use rauta_routes::{Compiled, Match, PortRef};

/// A two-port Service `web` (80 "http" with appProtocol h2c, 9090 "metrics") and its slices.
const WEB: &str = r#"
---
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports:
    - {name: http, port: 80, targetPort: 8080, appProtocol: kubernetes.io/h2c}
    - {name: metrics, port: 9090}
---
kind: EndpointSlice
metadata: {name: web-v4, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}, {name: metrics, port: 9191}]
endpoints:
  - addresses: ["127.0.0.3"]
  - addresses: ["127.0.0.1"]
    conditions: {ready: true}
  - addresses: ["127.0.0.2"]
    conditions: {ready: false}
  - addresses: ["127.0.0.4", "127.0.0.3"]
    conditions: {serving: true}
---
kind: EndpointSlice
metadata: {name: web-v6, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv6
ports: [{name: http, port: 8080}]
endpoints:
  - addresses: ["::1"]
---
kind: EndpointSlice
metadata: {name: web-fqdn, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: FQDN
ports: [{name: http, port: 8080}]
endpoints:
  - addresses: ["web.example.com"]
---
kind: EndpointSlice
metadata: {name: web-elsewhere, namespace: other, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - addresses: ["127.0.0.99"]
"#;

/// An Ingress in `shop` routing `/p<i>` (Exact) to each of `ports` (YAML port objects) of `service`.
fn ingress_to(service: &str, ports: &[&str]) -> String {
    let mut paths = String::new();
    for (i, port) in ports.iter().enumerate() {
        paths.push_str(&format!(
            "      - {{path: /p{i}, pathType: Exact, backend: {{service: {{name: {service}, port: {port}}}}}}}\n"
        ));
    }
    format!(
        "\n---\nkind: Ingress\nmetadata: {{name: ing, namespace: shop}}\nspec:\n  ingressClassName: rauta\n  rules:\n  - host: h\n    http:\n      paths:\n{paths}"
    )
}

fn backend_of<'a>(c: &'a Compiled, path: &str) -> &'a Arc<rauta_routes::Backend> {
    match c.table.lookup("h", path) {
        Match::Route(r) => &r.backend,
        other => panic!("{path}: {other:?}"),
    }
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn ports_by_number_and_name_resolve_to_ready_endpoints() {
    let yaml = [
        WEB.to_owned(),
        ingress_to("web", &["{number: 80}", "{name: http}", "{name: metrics}"]),
    ]
    .concat();
    let c = compile_yaml(&yaml);
    let by_number = backend_of(&c, "/p0");
    let by_name = backend_of(&c, "/p1");
    // Not-ready 127.0.0.2 excluded; nil and true ready included; duplicates removed; sorted; IPv6 kept;
    // the slice in another namespace ignored.
    let want = addrs(&[
        "127.0.0.1:8080",
        "127.0.0.3:8080",
        "127.0.0.4:8080",
        "[::1]:8080",
    ]);
    assert_eq!(by_number.endpoints, want);
    assert_eq!(by_name.endpoints, want);
    assert_eq!(by_number.app_protocol.as_deref(), Some("kubernetes.io/h2c"));
    assert_eq!(by_number.problem, None);
    assert_eq!(by_name.service.port, PortRef::Name("http".into()));
    let metrics = backend_of(&c, "/p2");
    assert_eq!(
        metrics.endpoints,
        addrs(&["127.0.0.1:9191", "127.0.0.3:9191", "127.0.0.4:9191"])
    );
    assert_eq!(metrics.app_protocol, None);
    // The FQDN slice is diagnosed once, however many references resolve through it.
    assert_eq!(c.diagnostics.len(), 1, "{:?}", c.diagnostics);
    let d = &c.diagnostics[0];
    assert_eq!(
        (d.object.kind, d.object.name.as_str(), d.field.as_str()),
        ("EndpointSlice", "web-fqdn", "addressType")
    );
}

#[test]
fn one_shared_backend_per_service_ref() {
    let mut yaml = WEB.to_owned();
    yaml.push_str(&ingress_to(
        "web",
        &["{number: 80}", "{number: 80}", "{name: http}"],
    ));
    let c = compile_yaml(&yaml);
    assert!(Arc::ptr_eq(backend_of(&c, "/p0"), backend_of(&c, "/p1")));
    assert!(
        !Arc::ptr_eq(backend_of(&c, "/p0"), backend_of(&c, "/p2")),
        "number and name are distinct refs"
    );
}

#[test]
fn missing_service_port_or_slices_give_problem_and_diagnostic() {
    let extra = r#"
---
kind: Service
metadata: {name: lonely, namespace: shop}
spec: {ports: [{port: 80}]}
---
kind: Service
metadata: {name: unnamed, namespace: shop}
spec: {ports: [{port: 80}]}
---
kind: EndpointSlice
metadata: {name: unnamed-x, namespace: shop, labels: {kubernetes.io/service-name: unnamed}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: ["127.0.0.7"]}, {addresses: ["127.0.0.8"], conditions: {ready: false}}]
"#;
    let ports = [
        "{number: 80}",
        "{number: 81}",
        "{name: nope}",
        "{number: 80}",
        "{number: 80}",
    ];
    let mut ing = ingress_to("nosuch", &ports[..1]);
    // Rewrite service names per path: nosuch, web:81, web:nope, lonely:80, unnamed:80.
    ing = ing.replace(
        "      - {path: /p0, pathType: Exact, backend: {service: {name: nosuch, port: {number: 80}}}}\n",
        concat!(
            "      - {path: /p0, pathType: Exact, backend: {service: {name: nosuch, port: {number: 80}}}}\n",
            "      - {path: /p1, pathType: Exact, backend: {service: {name: web, port: {number: 81}}}}\n",
            "      - {path: /p2, pathType: Exact, backend: {service: {name: web, port: {name: nope}}}}\n",
            "      - {path: /p3, pathType: Exact, backend: {service: {name: lonely, port: {number: 80}}}}\n",
            "      - {path: /p4, pathType: Exact, backend: {service: {name: unnamed, port: {number: 80}}}}\n",
        ),
    );
    let c = compile_yaml(&[WEB, extra, &ing].concat());
    let ingress_diags: Vec<(&str, &str)> = c
        .diagnostics
        .iter()
        .filter(|d| d.object.kind == "Ingress")
        .map(|d| (d.field.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(
        ingress_diags.iter().map(|d| d.0).collect::<Vec<_>>(),
        [
            "spec.rules[0].http.paths[0].backend.service.name",
            "spec.rules[0].http.paths[1].backend.service.port",
            "spec.rules[0].http.paths[2].backend.service.port",
            "spec.rules[0].http.paths[3].backend.service",
        ]
    );
    for path in ["/p0", "/p1", "/p2", "/p3"] {
        let b = backend_of(&c, path);
        assert!(b.endpoints.is_empty(), "{path}");
        assert!(b.problem.is_some(), "{path}");
        assert_eq!(b.pick("127.0.0.1:1234".parse().unwrap()), None);
    }
    assert!(backend_of(&c, "/p0")
        .problem
        .as_deref()
        .unwrap()
        .contains("shop/nosuch not found"));
    // A single unnamed port matches the slice's unnamed port.
    let unnamed = backend_of(&c, "/p4");
    assert_eq!(unnamed.endpoints, addrs(&["127.0.0.7:8080"]));
    assert_eq!(unnamed.problem, None);
}

#[test]
fn unparsable_addresses_are_skipped_with_a_diagnostic() {
    let yaml = r#"
---
kind: Service
metadata: {name: s}
spec: {ports: [{port: 80}]}
---
kind: EndpointSlice
metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: ["127.0.0.1", "not-an-ip"]}]
"#;
    let c = compile_yaml(
        &[
            yaml.to_owned(),
            ingress("ing", "", &rule("h", "/", "Prefix", "s")),
        ]
        .concat(),
    );
    assert_eq!(c.diagnostics.len(), 1);
    assert_eq!(c.diagnostics[0].field, "endpoints[0].addresses[1]");
    let Match::Route(r) = c.table.lookup("h", "/") else {
        panic!()
    };
    assert_eq!(r.backend.endpoints, addrs(&["127.0.0.1:8080"]));
}

#[test]
fn no_ready_endpoint_is_a_problem_but_not_a_diagnostic() {
    let yaml = r#"
---
kind: Service
metadata: {name: s}
spec: {ports: [{port: 80}]}
---
kind: EndpointSlice
metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: false}}]
"#;
    let c = compile_yaml(
        &[
            yaml.to_owned(),
            ingress("ing", "", &rule("h", "/", "Prefix", "s")),
        ]
        .concat(),
    );
    assert_eq!(c.diagnostics, vec![]);
    let Match::Route(r) = c.table.lookup("h", "/") else {
        panic!()
    };
    assert!(r.backend.endpoints.is_empty());
    assert_eq!(r.backend.problem.as_deref(), Some("no ready endpoints"));
}

#[test]
fn malformed_backends_are_dropped_with_a_diagnostic() {
    let yaml = r#"
---
kind: Ingress
metadata: {name: bad}
spec:
  ingressClassName: rauta
  rules:
  - host: h
    http:
      paths:
      - {path: /a, pathType: Exact, backend: {service: {name: s, port: {}}}}
      - {path: /b, pathType: Exact, backend: {service: {name: s, port: {number: 70000}}}}
      - {path: /c, pathType: Exact, backend: {service: {name: s, port: {number: 80, name: http}}}}
      - {path: /d, pathType: Exact, backend: {resource: {kind: Bucket, name: b}}}
      - {path: /e, pathType: Exact, backend: {}}
"#;
    let c = compile_yaml(yaml);
    let fields: Vec<&str> = c.diagnostics.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.rules[0].http.paths[0].backend.service.port",
            "spec.rules[0].http.paths[1].backend.service.port.number",
            "spec.rules[0].http.paths[2].backend.service.port",
            "spec.rules[0].http.paths[3].backend.resource",
            "spec.rules[0].http.paths[4].backend.service",
        ]
    );
    assert!(c.table.routes().is_empty());
}

#[test]
fn pick_is_deterministic_and_spreads_over_endpoints() {
    let yaml = [WEB.to_owned(), ingress_to("web", &["{number: 80}"])].concat();
    let c = compile_yaml(&yaml);
    let b = backend_of(&c, "/p0");
    let mut seen = std::collections::BTreeMap::new();
    for port in 1000..5000u16 {
        let client: SocketAddr = SocketAddr::new([127, 0, 0, 1].into(), port);
        let picked = b.pick(client).unwrap();
        assert_eq!(b.pick(client), Some(picked), "same client, same endpoint");
        *seen.entry(picked).or_insert(0u32) += 1;
    }
    assert_eq!(
        seen.len(),
        b.endpoints.len(),
        "every endpoint gets clients: {seen:?}"
    );
    for count in seen.values() {
        assert!((700..1300).contains(count), "roughly even: {seen:?}");
    }
    let v6: SocketAddr = "[::1]:5555".parse().unwrap();
    assert!(b.endpoints.contains(&b.pick(v6).unwrap()));
    // The pick is the Maglev table's choice for the flow hash, as the kernel tiers compute it.
    let hash = rauta_common::flow::flow_hash_v4([127, 0, 0, 1], 4242);
    let slot = b.maglev().lookup(hash).unwrap();
    assert_eq!(
        b.pick("127.0.0.1:4242".parse().unwrap()),
        Some(b.endpoints[slot])
    );
}
