//! Default backends: per-host Ingress defaultBackend, the catch-all Ingress, the controller default.

mod common;
use common::*;
use rauta_routes::{compile, CompileOptions, DefaultScope, PortRef, ServiceRef};

fn with_default(name: &str, ts: &str, default_svc: &str, rules: &str) -> String {
    let rules_yaml = if rules.is_empty() {
        " []\n".to_owned()
    } else {
        format!("\n{rules}")
    };
    format!(
        r#"
---
kind: Ingress
metadata: {{name: {name}, creationTimestamp: "{ts}"}}
spec:
  ingressClassName: rauta
  defaultBackend: {{service: {{name: {default_svc}, port: {{number: 80}}}}}}
  rules:{rules_yaml}"#
    )
}

fn services() -> String {
    ["a", "b", "d1", "d2", "ctl"]
        .iter()
        .map(|s| service(s, "127.0.0.1"))
        .collect()
}

#[test]
fn ingress_default_backend_serves_its_hosts_unmatched_paths() {
    let yaml = [
        services(),
        with_default(
            "one",
            "2024-01-01T00:00:00Z",
            "d1",
            &rule("h", "/a", "Prefix", "a"),
        ),
        ingress(
            "two",
            "2024-01-02T00:00:00Z",
            &rule("g", "/b", "Prefix", "b"),
        ),
    ]
    .concat();
    let c = compile_yaml(&yaml);
    assert_eq!(c.diagnostics, vec![]);
    assert_eq!(resolve(&c, "h", "/a"), "route a Prefix /a");
    assert_eq!(resolve(&c, "h", "/zzz"), "default d1");
    // Another Ingress's host does not get it, nor do unknown hosts (one has host rules).
    assert_eq!(resolve(&c, "g", "/zzz"), "404");
    assert_eq!(resolve(&c, "unknown", "/"), "404");
}

#[test]
fn ingress_without_host_rules_is_the_catch_all() {
    let yaml = [
        services(),
        with_default("catch", "2024-01-01T00:00:00Z", "d1", ""),
        ingress(
            "two",
            "2024-01-02T00:00:00Z",
            &rule("g", "/b", "Prefix", "b"),
        ),
    ]
    .concat();
    let c = compile_yaml(&yaml);
    assert_eq!(resolve(&c, "unknown", "/"), "default d1");
    assert_eq!(
        resolve(&c, "g", "/zzz"),
        "default d1",
        "unmatched paths of other hosts too"
    );
    assert_eq!(resolve(&c, "g", "/b"), "route b Prefix /b");
    let scopes: Vec<_> = c
        .table
        .default_backends()
        .iter()
        .map(|d| d.scope.clone())
        .collect();
    assert_eq!(scopes, [DefaultScope::CatchAll]);
}

#[test]
fn oldest_catch_all_wins_with_a_diagnostic() {
    let yaml = [
        services(),
        with_default("newer", "2024-02-01T00:00:00Z", "d2", ""),
        with_default("older", "2024-01-01T00:00:00Z", "d1", ""),
    ]
    .concat();
    let c = compile_yaml(&yaml);
    assert_eq!(resolve(&c, "x", "/"), "default d1");
    assert_eq!(c.diagnostics.len(), 1);
    assert_eq!(c.diagnostics[0].object.name, "newer");
    assert_eq!(c.diagnostics[0].field, "spec.defaultBackend");
    assert!(c.diagnostics[0]
        .message
        .contains("conflict lost to default/older"));
}

#[test]
fn hostless_rules_with_default_backend() {
    let yaml = [
        services(),
        with_default(
            "one",
            "2024-01-01T00:00:00Z",
            "d1",
            &rule("", "/a", "Prefix", "a"),
        ),
    ]
    .concat();
    let c = compile_yaml(&yaml);
    assert_eq!(resolve(&c, "any", "/a"), "route a Prefix /a");
    assert_eq!(resolve(&c, "any", "/b"), "default d1");
}

#[test]
fn controller_default_is_the_last_resort() {
    let yaml = [
        services(),
        with_default(
            "one",
            "2024-01-01T00:00:00Z",
            "d1",
            &rule("h", "/a", "Prefix", "a"),
        ),
    ]
    .concat();
    let options = CompileOptions {
        ingress_class: "rauta".into(),
        default_backend: Some(ServiceRef {
            namespace: "default".into(),
            name: "ctl".into(),
            port: PortRef::Name("http".into()),
        }),
    };
    let c = compile(&inputs(&yaml), &options);
    assert_eq!(c.diagnostics, vec![]);
    assert_eq!(
        resolve(&c, "h", "/zzz"),
        "default d1",
        "the host's own default first"
    );
    assert_eq!(resolve(&c, "elsewhere", "/"), "default ctl");

    // A catch-all Ingress beats the controller default.
    let yaml = [
        yaml,
        with_default("catch", "2024-01-03T00:00:00Z", "d2", ""),
    ]
    .concat();
    let c = compile(&inputs(&yaml), &options);
    assert_eq!(resolve(&c, "elsewhere", "/"), "default d2");
    let scopes: Vec<_> = c
        .table
        .default_backends()
        .iter()
        .map(|d| d.scope.clone())
        .collect();
    assert_eq!(
        scopes,
        [
            DefaultScope::Host(Some("h".into())),
            DefaultScope::CatchAll,
            DefaultScope::Controller
        ]
    );
}

#[test]
fn broken_controller_default_is_diagnosed() {
    let options = CompileOptions {
        ingress_class: "rauta".into(),
        default_backend: Some(ServiceRef {
            namespace: "ops".into(),
            name: "nope".into(),
            port: PortRef::Number(80),
        }),
    };
    let c = compile(&inputs(""), &options);
    assert_eq!(c.diagnostics.len(), 1);
    assert_eq!(c.diagnostics[0].field, "--default-backend.service.name");
    match c.table.lookup("x", "/") {
        rauta_routes::Match::DefaultBackend(b) => {
            assert!(b.endpoints.is_empty());
            assert!(b.problem.as_deref().unwrap().contains("not found"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nothing_configured_is_not_found() {
    let c = compile_yaml("");
    assert_eq!(resolve(&c, "x", "/"), "404");
}
