//! The same object defined twice: the later definition wins, with an error naming the first.

mod common;
use common::*;
use rauta_manifests::{parse_manifest, Kind, ParsedManifests};

fn service(name: &str, namespace: Option<&str>, port: u16) -> String {
    let ns = namespace
        .map(|n| format!("\n  namespace: {n}"))
        .unwrap_or_default();
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}{ns}\nspec:\n  ports:\n  - port: {port}\n")
}

#[test]
fn duplicate_in_one_file_keeps_the_later() {
    let text = format!(
        "{}---\n{}---\n{}",
        service("web", None, 80),
        service("api", None, 81),
        service("web", Some("default"), 8080)
    );
    let parsed = parse_manifest("a.yaml", &text);
    let e = only_error(&parsed);
    assert_eq!(
        e.to_string(),
        "a.yaml: document 2 (Service default/web): duplicate Service default/web: also defined in a.yaml document 0; keeping the later one"
    );
    assert_eq!(service_names(&parsed), ["web", "api"]);
    assert_eq!(parsed.inputs.services[0].spec.ports[0].port, 8080);
    assert_eq!(
        parsed
            .origin(Kind::Service, "default", "web")
            .unwrap()
            .document,
        2
    );
}

#[test]
fn same_name_in_other_namespace_or_kind_is_not_a_duplicate() {
    let text = format!(
        "{}---\n{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: web}}\n",
        service("web", None, 80),
        service("web", Some("other"), 80)
    );
    let parsed = parse_manifest("a.yaml", &text);
    assert!(parsed.errors.is_empty(), "{:#?}", parsed.errors);
    assert_eq!(parsed.inputs.services.len(), 2);
    assert_eq!(parsed.inputs.secrets.len(), 1);
}

#[test]
fn duplicates_across_files_are_found_by_merge() {
    let mut all = ParsedManifests::default();
    all.merge(parse_manifest("a.yaml", &service("web", None, 80)));
    all.merge(parse_manifest(
        "b.yaml",
        &format!(
            "{}---\n{}",
            service("api", None, 81),
            service("web", None, 9090)
        ),
    ));
    let e = only_error(&all);
    assert_eq!(e.source_name, "b.yaml");
    assert_eq!(e.document, 1);
    assert_eq!(
        e.message,
        "duplicate Service default/web: also defined in a.yaml document 0; keeping the later one"
    );
    assert_eq!(service_names(&all), ["web", "api"]);
    assert_eq!(all.inputs.services[0].spec.ports[0].port, 9090);
    assert_eq!(
        all.origin(Kind::Service, "", "web").unwrap().source_name,
        "b.yaml"
    );
}

#[test]
fn merge_keeps_errors_and_skipped_of_both() {
    let mut all = parse_manifest(
        "a.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
    );
    all.merge(parse_manifest(
        "b.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: -1}]}\n",
    ));
    assert_eq!(all.skipped.len(), 1);
    assert_eq!(all.skipped[0].source_name, "a.yaml");
    assert_eq!(all.errors.len(), 1);
    assert_eq!(all.errors[0].source_name, "b.yaml");
}

#[test]
fn cluster_scoped_duplicates_ignore_namespace() {
    let class = |ns: &str| {
        format!("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: rauta, namespace: {ns}}}\nspec: {{controller: rauta.io/ingress-controller}}\n")
    };
    let parsed = parse_manifest("c.yaml", &format!("{}---\n{}", class("a"), class("b")));
    let e = only_error(&parsed);
    assert_eq!(e.name.as_deref(), Some("rauta"));
    assert_eq!(parsed.inputs.ingress_classes.len(), 1);
}

#[test]
fn duplicate_list_items_name_the_item() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a}, spec: {ports: [{port: 1}]}}\n- {apiVersion: v1, kind: Service, metadata: {name: a}, spec: {ports: [{port: 2}]}}\n";
    let parsed = parse_manifest("l.yaml", text);
    assert!(only_error(&parsed)
        .message
        .contains("also defined in l.yaml document 0 item 0"));
    assert_eq!(parsed.inputs.services[0].spec.ports[0].port, 2);
}

#[test]
fn merge_survives_callers_editing_inputs() {
    let mut all = parse_manifest(
        "a.yaml",
        &format!(
            "{}---\n{}",
            service("one", None, 1),
            service("two", None, 2)
        ),
    );
    all.inputs.services.remove(0);
    all.merge(parse_manifest("b.yaml", &service("two", None, 3)));
    all.merge(parse_manifest("c.yaml", &service("one", None, 4)));
    // "two" was replaced where it now is; "one" (removed by the caller) is added back without
    // clobbering anything.
    let ports: Vec<(&str, i32)> = all
        .inputs
        .services
        .iter()
        .map(|s| (s.metadata.name.as_str(), s.spec.ports[0].port))
        .collect();
    assert_eq!(ports, [("two", 3), ("one", 4)]);
}
