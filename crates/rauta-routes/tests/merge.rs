//! Several Ingresses: class selection, merging of rules for one host, and conflicts.

mod common;
use common::*;

#[test]
fn rules_of_several_ingresses_merge_per_host() {
    let yaml = [
        service("a", "127.0.0.1"),
        service("b", "127.0.0.2"),
        ingress(
            "one",
            "2024-01-01T00:00:00Z",
            &rule("h", "/a", "Prefix", "a"),
        ),
        ingress(
            "two",
            "2024-01-02T00:00:00Z",
            &rule("H", "/a/b", "Prefix", "b"),
        ),
    ]
    .concat();
    let c = compile_yaml(&yaml);
    assert_eq!(c.diagnostics, vec![]);
    assert_eq!(resolve(&c, "h", "/a/x"), "route a Prefix /a");
    assert_eq!(resolve(&c, "h", "/a/b/c"), "route b Prefix /a/b");
    let names: Vec<_> = c
        .table
        .routes()
        .iter()
        .map(|r| r.ingress.to_string())
        .collect();
    assert_eq!(
        names,
        ["default/two", "default/one"],
        "routes are listed by precedence"
    );
}

fn conflicting(first: (&str, &str), second: (&str, &str)) -> rauta_routes::Compiled {
    let yaml = [
        service("a", "127.0.0.1"),
        service("b", "127.0.0.2"),
        ingress(first.0, first.1, &rule("h", "/x", "Prefix", "a")),
        // `/x/` is the same Prefix as `/x`.
        ingress(second.0, second.1, &rule("h", "/x/", "Prefix", "b")),
    ]
    .concat();
    compile_yaml(&yaml)
}

#[test]
fn oldest_ingress_wins_a_conflict() {
    // Listed newest first: input order must not matter.
    let c = conflicting(
        ("newer", "2024-02-01T00:00:00Z"),
        ("older", "2024-01-01T00:00:00Z"),
    );
    assert_eq!(resolve(&c, "h", "/x"), "route b Prefix /x/");
    assert_eq!(c.diagnostics.len(), 1);
    let d = &c.diagnostics[0];
    assert_eq!(d.object.name, "newer");
    assert_eq!(d.field, "spec.rules[0].http.paths[0]");
    assert!(
        d.message.starts_with("conflict lost to default/older"),
        "{}",
        d.message
    );
}

#[test]
fn missing_timestamp_sorts_after_any_timestamp() {
    let c = conflicting(("undated", ""), ("dated", "2030-01-01T00:00:00Z"));
    assert_eq!(resolve(&c, "h", "/x"), "route b Prefix /x/");
    assert_eq!(c.diagnostics[0].object.name, "undated");
}

#[test]
fn equal_timestamps_tie_break_on_namespace_then_name() {
    let c = conflicting(
        ("zz", "2024-01-01T00:00:00Z"),
        ("aa", "2024-01-01T00:00:00Z"),
    );
    assert_eq!(resolve(&c, "h", "/x"), "route b Prefix /x/");
    assert!(c.diagnostics[0].message.contains("default/aa"));
    let c = conflicting(("aa", ""), ("zz", ""));
    assert_eq!(resolve(&c, "h", "/x"), "route a Prefix /x");
}

#[test]
fn same_path_with_different_type_or_host_is_not_a_conflict() {
    let yaml = [
        service("a", "127.0.0.1"),
        service("b", "127.0.0.2"),
        ingress(
            "one",
            "2024-01-01T00:00:00Z",
            &rule("h", "/x", "Prefix", "a"),
        ),
        ingress(
            "two",
            "2024-01-02T00:00:00Z",
            &[
                rule("h", "/x", "Exact", "b"),
                rule("g", "/x", "Prefix", "b"),
            ]
            .concat(),
        ),
    ]
    .concat();
    let c = compile_yaml(&yaml);
    assert_eq!(c.diagnostics, vec![]);
    assert_eq!(c.table.routes().len(), 3);
}

#[test]
fn only_ingresses_of_our_class_are_compiled() {
    let other = r#"
---
kind: Ingress
metadata: {name: nginx-one}
spec:
  ingressClassName: nginx
  rules: [{host: h, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: missing, port: {number: 80}}}}]}}]
---
kind: Ingress
metadata: {name: legacy, annotations: {kubernetes.io/ingress.class: rauta}}
spec:
  rules: [{host: legacy, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}]}}]
---
kind: Ingress
metadata: {name: unclassed}
spec:
  rules: [{host: unclassed, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}]}}]
"#;
    let yaml = [service("a", "127.0.0.1"), other.to_owned()].concat();
    let c = compile_yaml(&yaml);
    assert_eq!(c.diagnostics, vec![], "other classes are ignored silently");
    assert_eq!(resolve(&c, "h", "/"), "404");
    assert_eq!(resolve(&c, "legacy", "/"), "route a Prefix /");
    assert_eq!(
        resolve(&c, "unclassed", "/"),
        "404",
        "no default IngressClass"
    );

    let default_class = r#"
---
kind: IngressClass
metadata: {name: rauta, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {controller: rauta.io/ingress-controller}
"#;
    let c = compile_yaml(&[yaml, default_class.to_owned()].concat());
    assert_eq!(resolve(&c, "unclassed", "/"), "route a Prefix /");
    assert_eq!(resolve(&c, "h", "/"), "404");
}

#[test]
fn ingress_class_option_is_respected() {
    let yaml = [
        service("a", "127.0.0.1"),
        ingress("ing", "", &rule("h", "/", "Prefix", "a")),
    ]
    .concat();
    let options = rauta_routes::CompileOptions {
        ingress_class: "other".into(),
        default_backend: None,
    };
    let c = rauta_routes::compile(&inputs(&yaml), &options);
    assert!(c.table.routes().is_empty());
}
