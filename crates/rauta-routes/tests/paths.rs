//! Path matching and precedence through the compiled table (Kubernetes docs "Examples" table).

mod common;
use common::*;

/// (path, pathType, service) of one Ingress path.
type PathRow<'a> = (&'a str, &'a str, &'a str);

/// Compile one Ingress for host `h` with `paths`.
fn table(paths: &[PathRow]) -> rauta_routes::Compiled {
    let mut yaml = String::new();
    let mut rules = String::new();
    for (path, ty, svc) in paths {
        rules.push_str(&rule("h", path, ty, svc));
        yaml.push_str(&service(svc, "127.0.0.1"));
    }
    yaml.push_str(&ingress("ing", "2024-01-01T00:00:00Z", &rules));
    let c = compile_yaml(&yaml);
    assert_eq!(c.diagnostics, vec![], "fixture must compile cleanly");
    c
}

#[test]
fn kubernetes_docs_path_examples() {
    // (paths, request, expected) — every row of the docs table, multi-path rows included.
    let cases: &[(&[PathRow], &str, &str)] = &[
        (&[("/", "Prefix", "a")], "/", "route a Prefix /"),
        (&[("/", "Prefix", "a")], "/any/path", "route a Prefix /"),
        (&[("/foo", "Exact", "a")], "/foo", "route a Exact /foo"),
        (&[("/foo", "Exact", "a")], "/bar", "404"),
        (&[("/foo", "Exact", "a")], "/foo/", "404"),
        (&[("/foo/", "Exact", "a")], "/foo", "404"),
        (&[("/foo", "Prefix", "a")], "/foo", "route a Prefix /foo"),
        (&[("/foo", "Prefix", "a")], "/foo/", "route a Prefix /foo"),
        (&[("/foo/", "Prefix", "a")], "/foo", "route a Prefix /foo/"),
        (&[("/foo/", "Prefix", "a")], "/foo/", "route a Prefix /foo/"),
        (&[("/aaa/bb", "Prefix", "a")], "/aaa/bbb", "404"),
        (
            &[("/aaa/bbb", "Prefix", "a")],
            "/aaa/bbb",
            "route a Prefix /aaa/bbb",
        ),
        (
            &[("/aaa/bbb/", "Prefix", "a")],
            "/aaa/bbb",
            "route a Prefix /aaa/bbb/",
        ),
        (
            &[("/aaa/bbb", "Prefix", "a")],
            "/aaa/bbb/",
            "route a Prefix /aaa/bbb",
        ),
        (
            &[("/aaa/bbb", "Prefix", "a")],
            "/aaa/bbb/ccc",
            "route a Prefix /aaa/bbb",
        ),
        (&[("/aaa/bbb", "Prefix", "a")], "/aaa/bbbxyz", "404"),
        (
            &[("/", "Prefix", "a"), ("/aaa", "Prefix", "b")],
            "/aaa/ccc",
            "route b Prefix /aaa",
        ),
        (
            &[
                ("/", "Prefix", "a"),
                ("/aaa", "Prefix", "b"),
                ("/aaa/bbb", "Prefix", "c"),
            ],
            "/aaa/bbb",
            "route c Prefix /aaa/bbb",
        ),
        (
            &[
                ("/", "Prefix", "a"),
                ("/aaa", "Prefix", "b"),
                ("/aaa/bbb", "Prefix", "c"),
            ],
            "/ccc",
            "route a Prefix /",
        ),
        (&[("/aaa", "Prefix", "a")], "/ccc", "404"),
        (
            &[("/foo", "Prefix", "a"), ("/foo", "Exact", "b")],
            "/foo",
            "route b Exact /foo",
        ),
        (
            &[("/foo", "Exact", "b"), ("/foo", "Prefix", "a")],
            "/foo",
            "route b Exact /foo",
        ),
        (
            &[("/foo", "Prefix", "a"), ("/foo", "Exact", "b")],
            "/foo/x",
            "route a Prefix /foo",
        ),
    ];
    for (paths, request, want) in cases {
        assert_eq!(
            resolve(&table(paths), "h", request),
            *want,
            "paths {paths:?}, request {request}"
        );
    }
}

#[test]
fn longest_match_wins_across_types() {
    let c = table(&[
        ("/api", "Prefix", "prefix"),
        ("/api/v1/users", "Exact", "exact"),
        ("/api/v[0-9]+/.*", "ImplementationSpecific", "regex"),
        (
            "/api/v1/users/me/avatar-[a-z]+",
            "ImplementationSpecific",
            "longregex",
        ),
    ]);
    // Exact /api/v1/users (13) is longer than Prefix /api (4), shorter than the regex (15).
    assert_eq!(
        resolve(&c, "h", "/api/v1/users"),
        "route regex Regex /api/v[0-9]+/.*"
    );
    assert_eq!(
        resolve(&c, "h", "/api/v2/x"),
        "route regex Regex /api/v[0-9]+/.*"
    );
    assert_eq!(resolve(&c, "h", "/api/vX/x"), "route prefix Prefix /api");
    assert_eq!(
        resolve(&c, "h", "/api/v1/users/me/avatar-big"),
        "route longregex Regex /api/v1/users/me/avatar-[a-z]+"
    );
    assert_eq!(resolve(&c, "h", "/other"), "404");
}

#[test]
fn equal_length_exact_beats_prefix_beats_regex() {
    // Regex "/abcd" has length 5, like Prefix "/abcd" and Exact "/abcd".
    let c = table(&[
        ("/abcd", "ImplementationSpecific", "regex"),
        ("/abcd", "Prefix", "prefix"),
    ]);
    assert_eq!(resolve(&c, "h", "/abcd"), "route prefix Prefix /abcd");
    let c = table(&[
        ("/abcd", "ImplementationSpecific", "regex"),
        ("/abcd", "Exact", "exact"),
    ]);
    assert_eq!(resolve(&c, "h", "/abcd"), "route exact Exact /abcd");
    // A longer regex beats a shorter prefix.
    let c = table(&[
        ("/ab.*", "ImplementationSpecific", "regex"),
        ("/ab", "Prefix", "prefix"),
    ]);
    assert_eq!(resolve(&c, "h", "/ab/x"), "route regex Regex /ab.*");
    assert_eq!(resolve(&c, "h", "/ab"), "route regex Regex /ab.*");
}

#[test]
fn regex_matches_whole_path_only() {
    let c = table(&[("/img/[0-9]+", "ImplementationSpecific", "img")]);
    assert_eq!(resolve(&c, "h", "/img/42"), "route img Regex /img/[0-9]+");
    assert_eq!(resolve(&c, "h", "/img/42/x"), "404");
    assert_eq!(resolve(&c, "h", "/x/img/42"), "404");
}

#[test]
fn query_string_is_ignored_and_path_is_not_decoded() {
    let c = table(&[("/a/b", "Exact", "exact"), ("/a", "Prefix", "prefix")]);
    assert_eq!(resolve(&c, "h", "/a/b?x=1"), "route exact Exact /a/b");
    assert_eq!(resolve(&c, "h", "/a/b?"), "route exact Exact /a/b");
    assert_eq!(
        resolve(&c, "h", "/a%2Fb"),
        "404",
        "%2F is not a separator and not decoded"
    );
    assert_eq!(resolve(&c, "h", "/a/%62"), "route prefix Prefix /a");
    assert_eq!(resolve(&c, "h", "/A/b"), "404", "paths are case-sensitive");
}

#[test]
fn invalid_paths_are_dropped_with_a_diagnostic() {
    let mut yaml = service("a", "127.0.0.1");
    let rules = [
        rule("h", "/ok", "Exact", "a"),
        rule("h", "/bad(", "ImplementationSpecific", "a"),
        rule("h", "relative", "Prefix", "a"),
        rule("h", "/x", "Glob", "a"),
    ]
    .concat();
    yaml.push_str(&ingress("ing", "2024-01-01T00:00:00Z", &rules));
    let c = compile_yaml(&yaml);
    let fields: Vec<&str> = c.diagnostics.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.rules[1].http.paths[0].path",
            "spec.rules[2].http.paths[0].path",
            "spec.rules[3].http.paths[0].pathType"
        ]
    );
    assert!(
        c.diagnostics[0].message.contains("regex"),
        "{}",
        c.diagnostics[0].message
    );
    assert_eq!(c.diagnostics[0].object.name, "ing");
    assert_eq!(c.table.routes().len(), 1);
    assert_eq!(resolve(&c, "h", "/ok"), "route a Exact /ok");
}

#[test]
fn long_paths_match_past_the_length_filter() {
    // The lookup skips path lengths no key has; lengths >= 128 share one bucket of that filter.
    let long_prefix = format!("/{}", "a".repeat(150));
    let long_exact = format!("/{}", "b".repeat(200));
    let c = table(&[
        (&long_prefix, "Prefix", "p"),
        (&long_exact, "Exact", "e"),
        ("/", "Prefix", "root"),
    ]);
    assert_eq!(
        resolve(&c, "h", &format!("{long_prefix}/x")),
        format!("route p Prefix {long_prefix}")
    );
    assert_eq!(
        resolve(&c, "h", &long_exact),
        format!("route e Exact {long_exact}")
    );
    assert_eq!(
        resolve(&c, "h", &format!("{long_exact}x")),
        "route root Prefix /"
    );
    assert_eq!(resolve(&c, "h", &"/c".repeat(100)), "route root Prefix /");
}

#[test]
fn equal_length_regexes_keep_declaration_order() {
    // The longer pattern wins even if it is less specific ("/z?.*" is 5 characters, "/a.*" 4).
    let c = table(&[
        ("/a.*", "ImplementationSpecific", "short"),
        ("/z?.*", "ImplementationSpecific", "long"),
    ]);
    assert_eq!(resolve(&c, "h", "/abc"), "route long Regex /z?.*");
    // Both patterns have length 7 and match "/abc": the first declared wins, whatever its spelling.
    let c = table(&[
        ("/[ab].*", "ImplementationSpecific", "first"),
        ("/[a-c]*", "ImplementationSpecific", "second"),
    ]);
    assert_eq!(resolve(&c, "h", "/abc"), "route first Regex /[ab].*");
    let c = table(&[
        ("/[a-c]*", "ImplementationSpecific", "second"),
        ("/[ab].*", "ImplementationSpecific", "first"),
    ]);
    assert_eq!(resolve(&c, "h", "/abc"), "route second Regex /[a-c]*");
}
