//! Host selection: exact > wildcard > hostless, case-insensitive, ports stripped, no fall-through.

mod common;
use common::*;

fn fixture() -> rauta_routes::Compiled {
    let mut yaml = [
        service("exact", "127.0.0.1"),
        service("wild", "127.0.0.2"),
        service("any", "127.0.0.3"),
    ]
    .concat();
    let rules = [
        rule("foo.example.com", "/app", "Prefix", "exact"),
        rule("*.example.com", "/", "Prefix", "wild"),
        rule("", "/", "Prefix", "any"),
    ]
    .concat();
    yaml.push_str(&ingress("ing", "2024-01-01T00:00:00Z", &rules));
    let c = compile_yaml(&yaml);
    assert_eq!(c.diagnostics, vec![]);
    c
}

#[test]
fn exact_beats_wildcard_beats_hostless() {
    let c = fixture();
    let table = [
        ("foo.example.com", "/app/x", "route exact Prefix /app"),
        ("bar.example.com", "/app/x", "route wild Prefix /"),
        ("a.b.example.com", "/app/x", "route any Prefix /"),
        ("example.com", "/app/x", "route any Prefix /"),
        ("other.org", "/", "route any Prefix /"),
        ("", "/", "route any Prefix /"),
    ];
    for (host, path, want) in table {
        assert_eq!(resolve(&c, host, path), want, "{host}{path}");
    }
}

#[test]
fn host_header_case_port_and_literals() {
    let c = fixture();
    let table = [
        ("FOO.Example.COM", "route exact Prefix /app"),
        ("foo.example.com:8080", "route exact Prefix /app"),
        ("foo.example.com.", "route exact Prefix /app"),
        ("Bar.EXAMPLE.com:443", "route wild Prefix /"),
        ("127.0.0.1:80", "route any Prefix /"),
        ("[::1]:80", "route any Prefix /"),
        ("[::1]", "route any Prefix /"),
    ];
    for (host, want) in table {
        assert_eq!(resolve(&c, host, "/app"), want, "{host}");
    }
    let long = "a".repeat(300);
    assert_eq!(resolve(&c, &long, "/"), "route any Prefix /");
}

#[test]
fn selected_host_does_not_fall_through_to_hostless_rules() {
    let c = fixture();
    // foo.example.com has rules, but none for /other: 404, not the hostless `/` rule.
    assert_eq!(resolve(&c, "foo.example.com", "/other"), "404");
    // Without a wildcard `/` rule, bar.example.com would 404 as well.
    let mut yaml = [service("wild", "127.0.0.2"), service("any", "127.0.0.3")].concat();
    let rules = [
        rule("*.example.com", "/w", "Prefix", "wild"),
        rule("", "/", "Prefix", "any"),
    ]
    .concat();
    yaml.push_str(&ingress("ing", "2024-01-01T00:00:00Z", &rules));
    let c = compile_yaml(&yaml);
    assert_eq!(resolve(&c, "bar.example.com", "/x"), "404");
    assert_eq!(resolve(&c, "bar.example.com", "/w"), "route wild Prefix /w");
}

#[test]
fn host_without_paths_still_claims_the_host() {
    let yaml = [
        service("any", "127.0.0.3"),
        ingress(
            "ing",
            "2024-01-01T00:00:00Z",
            "  - host: quiet.example.com\n",
        ),
        ingress(
            "other",
            "2024-01-02T00:00:00Z",
            &rule("", "/", "Prefix", "any"),
        ),
    ]
    .concat();
    let c = compile_yaml(&yaml);
    assert_eq!(resolve(&c, "quiet.example.com", "/"), "404");
    assert_eq!(resolve(&c, "loud.example.com", "/"), "route any Prefix /");
}

#[test]
fn invalid_host_drops_the_rule_with_a_diagnostic() {
    let mut yaml = service("a", "127.0.0.1");
    let rules = [
        rule("a.*.com", "/", "Prefix", "a"),
        rule("ok.com", "/", "Prefix", "a"),
    ]
    .concat();
    yaml.push_str(&ingress("ing", "2024-01-01T00:00:00Z", &rules));
    let c = compile_yaml(&yaml);
    assert_eq!(c.diagnostics.len(), 1, "{:?}", c.diagnostics);
    assert_eq!(c.diagnostics[0].field, "spec.rules[0].host");
    assert_eq!(c.table.routes().len(), 1);
    assert_eq!(resolve(&c, "a.x.com", "/"), "404");
}

#[test]
fn rule_hosts_are_lowercased() {
    let mut yaml = service("a", "127.0.0.1");
    yaml.push_str(&ingress(
        "ing",
        "2024-01-01T00:00:00Z",
        &rule("WWW.Example.com", "/", "Prefix", "a"),
    ));
    let c = compile_yaml(&yaml);
    assert_eq!(c.table.routes()[0].host.as_deref(), Some("www.example.com"));
    assert_eq!(resolve(&c, "www.EXAMPLE.com", "/"), "route a Prefix /");
}
