//! Property test: the table's lookup agrees with a brute-force reference of the documented rules
//! (every path of the host tested directly; longest wins; Exact > Prefix > Regex at equal length).

use proptest::prelude::*;
use rauta_routes::model::*;
use rauta_routes::{compile, CompileOptions, Match, PathType};

fn path_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof!["", "a", "b", "ab", "A"], 0..4)
        .prop_map(|elems| format!("/{}", elems.join("/")))
}

fn kind_strategy() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("Exact"),
        Just("Prefix"),
        Just("ImplementationSpecific")
    ]
}

/// Regexes over the same alphabet, so that they sometimes compete with the other paths.
fn regex_for(path: &str) -> String {
    path.replace("ab", "a.").replace("/b", "/[ab]")
}

fn build(paths: &[(String, &'static str)]) -> Inputs {
    let http_paths = paths
        .iter()
        .enumerate()
        .map(|(i, (p, kind))| HttpIngressPath {
            path: Some(if *kind == "ImplementationSpecific" {
                regex_for(p)
            } else {
                p.clone()
            }),
            path_type: Some((*kind).into()),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: format!("s{i}"),
                    port: ServiceBackendPort {
                        number: Some(80),
                        name: None,
                    },
                }),
                resource: None,
            },
        })
        .collect();
    let mut ingress = Ingress::default();
    ingress.metadata.name = "ing".into();
    ingress.spec.ingress_class_name = Some("rauta".into());
    ingress.spec.rules = vec![IngressRule {
        host: Some("h".into()),
        http: Some(HttpIngressRuleValue { paths: http_paths }),
    }];
    Inputs {
        ingresses: vec![ingress],
        ..Default::default()
    }
}

/// The reference: (precedence length, rank) of a path spec if it matches `request`.
fn reference_score(path: &str, kind: &str, request: &str) -> Option<(usize, u8)> {
    match kind {
        "Exact" => (path == request).then_some((path.len(), 0)),
        "Prefix" => {
            let p: Vec<&str> = path.trim_end_matches('/').split('/').collect();
            let r: Vec<&str> = request.split('/').collect();
            r.starts_with(&p)
                .then_some((path.trim_end_matches('/').len().max(1), 1))
        }
        _ => {
            let pattern = regex_for(path);
            let re = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
            re.is_match(request).then_some((pattern.len(), 2))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn lookup_agrees_with_brute_force(
        paths in proptest::collection::vec((path_strategy(), kind_strategy()), 1..8),
        request in path_strategy(),
    ) {
        let compiled = compile(&build(&paths), &CompileOptions::default());
        // Identities that collide (same type and normalised path) keep the first; mirror that.
        let mut seen = std::collections::HashSet::new();
        let mut best: Option<((usize, u8), String, String)> = None;
        for (path, kind) in &paths {
            let identity = match *kind {
                "Prefix" => format!("P{}", path.trim_end_matches('/')),
                "Exact" => format!("E{path}"),
                _ => format!("R{}", regex_for(path)),
            };
            if !seen.insert(identity) {
                continue;
            }
            if let Some((len, rank)) = reference_score(path, kind, &request) {
                let better = match &best {
                    None => true,
                    Some(((blen, brank), _, _)) => len > *blen || (len == *blen && rank < *brank),
                };
                if better {
                    let written = if *kind == "ImplementationSpecific" { regex_for(path) } else { path.clone() };
                    best = Some(((len, rank), kind.to_string(), written));
                }
            }
        }
        let got = match compiled.table.lookup("h", &request) {
            Match::Route(r) => {
                let kind = match r.path_type {
                    PathType::Exact => "Exact",
                    PathType::Prefix => "Prefix",
                    PathType::Regex => "ImplementationSpecific",
                };
                Some((kind.to_string(), r.path.clone()))
            }
            _ => None,
        };
        prop_assert_eq!(got, best.map(|(_, k, p)| (k, p)), "paths {:?} request {:?}", paths, request);
    }
}
