//! The incremental compiler gives exactly what a full compile of the same objects gives, over random
//! sequences of changes (Ingresses added, changed, deleted, moved between classes; Services and
//! EndpointSlices changed), with conflicts, invalid paths and backends, default backends and TLS mixed in.

use std::sync::Arc;

use proptest::prelude::*;
use rauta_routes::model::*;
use rauta_routes::{compile, CompileOptions, Compiled, IncrementalCompiler, Match};
use serde_json::{json, Value};

/// A small deterministic generator driven by proptest's seed (so failures shrink to a seed and replay).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len())]
    }
}

const HOSTS: &[&str] = &["a.test", "b.test", "*.w.test", "", "BAD_host!"];
const PATHS: &[&str] = &["/", "/x", "/x/", "/x/y", "/y", "/api/v[0-9]+", "/(", ""];
const TYPES: &[&str] = &["Exact", "Prefix", "ImplementationSpecific", "Weird"];
const SERVICES: &[&str] = &["s1", "s2", "s3", "missing"];

fn random_ingress(rng: &mut Rng, name: usize) -> Ingress {
    let backend = |rng: &mut Rng| {
        let port = match rng.below(4) {
            0 => json!({"name": "http"}),
            1 => json!({"number": 0}),
            _ => json!({"number": 80}),
        };
        json!({"service": {"name": rng.pick(SERVICES), "port": port}})
    };
    let mut rules = Vec::new();
    for _ in 0..rng.below(3) + 1 {
        let mut paths = Vec::new();
        for _ in 0..rng.below(3) {
            paths.push(json!({"path": rng.pick(PATHS), "pathType": rng.pick(TYPES),
                "backend": backend(rng)}));
        }
        let host = rng.pick(HOSTS);
        let mut rule = if rng.below(5) == 0 {
            json!({})
        } else {
            json!({"http": {"paths": paths}})
        };
        if !host.is_empty() {
            rule["host"] = json!(host);
        }
        rules.push(rule);
    }
    let class = match rng.below(6) {
        0 => json!("other"),
        _ => json!("rauta"),
    };
    let mut annotations = json!({});
    match rng.below(6) {
        0 => annotations["rauta.io/ssl-redirect"] = json!("maybe"),
        1 => annotations["rauta.io/ssl-redirect"] = json!("false"),
        2 => annotations["rauta.io/health-check-path"] = json!("/healthz"),
        3 => annotations["rauta.io/health-check-interval"] = json!("soon"),
        _ => {}
    }
    let mut spec = json!({"ingressClassName": class, "rules": rules});
    if rng.below(3) == 0 {
        spec["defaultBackend"] = backend(rng);
    }
    if rng.below(3) == 0 {
        spec["tls"] = json!([{"hosts": [rng.pick(HOSTS)], "secretName": "cert"}]);
    }
    let timestamp = format!("2026-01-01T00:00:{:02}Z", rng.below(4));
    serde_json::from_value(json!({
        "metadata": {"name": format!("ing-{name}"), "namespace": "default",
            "creationTimestamp": timestamp, "annotations": annotations},
        "spec": spec}))
    .unwrap()
}

fn random_service(rng: &mut Rng, name: &str) -> Service {
    let mut annotations = json!({});
    if rng.below(3) == 0 {
        annotations["rauta.io/health-check-path"] = json!("/svc");
    }
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default",
        "annotations": annotations},
        "spec": {"ports": [{"name": "http", "port": 80}]}}))
    .unwrap()
}

fn random_slice(rng: &mut Rng, service: &str) -> EndpointSlice {
    let endpoints: Vec<Value> = (0..rng.below(3))
        .map(|i| {
            json!({"addresses": [format!("198.18.0.{}", i + 1 + rng.below(3))],
            "conditions": {"ready": rng.below(4) != 0}})
        })
        .collect();
    serde_json::from_value(
        json!({"metadata": {"name": format!("{service}-1"), "namespace": "default",
        "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": endpoints}),
    )
    .unwrap()
}

/// Everything observable about a compile: the JSON view, health policies, diagnostics and what a set of
/// requests match (which checks the per-host indexes, not just the route list).
fn observe(c: &Compiled) -> Value {
    let mut probes = Vec::new();
    for host in ["a.test", "b.test", "q.w.test", "other.test"] {
        for path in [
            "/", "/x", "/x/", "/x/y", "/x/y/z", "/y", "/api/v1", "/nothing",
        ] {
            let matched = match c.table.lookup(host, path) {
                Match::Route(r) => json!({"route": [r.host, r.path, r.ingress.to_string()]}),
                Match::DefaultBackend(b) => json!({"default": b.service.to_string()}),
                Match::NotFound => json!("404"),
            };
            probes.push(matched);
        }
    }
    let health: Vec<String> = c
        .table
        .routes()
        .iter()
        .map(|r| format!("{:?}", r.backend.health))
        .collect();
    json!({"table": c.table.to_json(), "health": health, "probes": probes,
        "diagnostics": c.diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>()})
}

fn check_sequence(seed: u64, steps: usize) {
    let mut rng = Rng(seed | 1);
    let options = CompileOptions::default();
    let mut inputs = SharedInputs::default();
    inputs.ingress_classes.push(Arc::new(
        serde_json::from_value(json!({"metadata": {"name": "rauta"},
            "spec": {"controller": "rauta.io/ingress-controller"}}))
        .unwrap(),
    ));
    for s in &SERVICES[..3] {
        inputs.services.push(Arc::new(random_service(&mut rng, s)));
        inputs
            .endpoint_slices
            .push(Arc::new(random_slice(&mut rng, s)));
    }
    for i in 0..8 {
        inputs.ingresses.push(Arc::new(random_ingress(&mut rng, i)));
    }
    let mut incremental = IncrementalCompiler::new(options.clone());
    let mut next_name = 8;
    for step in 0..steps {
        let (got, _) = incremental.compile(&inputs);
        let want = compile(&inputs.to_inputs(), &options);
        assert_eq!(
            observe(&got),
            observe(&want),
            "seed {seed}, step {step}: incremental and full compiles differ"
        );
        match rng.below(8) {
            // Change an Ingress (a new object under the same name, as a watch update is).
            0..=2 if !inputs.ingresses.is_empty() => {
                let i = rng.below(inputs.ingresses.len());
                let name: usize = inputs.ingresses[i].metadata.name[4..].parse().unwrap();
                inputs.ingresses[i] = Arc::new(random_ingress(&mut rng, name));
            }
            3 => {
                inputs
                    .ingresses
                    .push(Arc::new(random_ingress(&mut rng, next_name)));
                next_name += 1;
            }
            4 if !inputs.ingresses.is_empty() => {
                let i = rng.below(inputs.ingresses.len());
                inputs.ingresses.swap_remove(i);
            }
            5 => {
                let s = rng.below(3);
                inputs.services[s] = Arc::new(random_service(&mut rng, SERVICES[s]));
            }
            6 => {
                let s = rng.below(3);
                inputs.endpoint_slices[s] = Arc::new(random_slice(&mut rng, SERVICES[s]));
            }
            // Reorder: order of the inputs must not matter.
            _ => inputs.ingresses.reverse(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn incremental_equals_full_over_random_changes(seed in any::<u64>()) {
        check_sequence(seed, 40);
    }
}

#[test]
fn unchanged_ingresses_are_not_lowered_again() {
    let mut rng = Rng(7);
    let mut inputs = SharedInputs::default();
    for i in 0..20 {
        let mut ingress = random_ingress(&mut rng, i);
        ingress.spec.ingress_class_name = Some("rauta".into());
        inputs.ingresses.push(Arc::new(ingress));
    }
    let mut incremental = IncrementalCompiler::new(CompileOptions::default());
    let (_, first) = incremental.compile(&inputs);
    assert_eq!((first.reused, first.lowered), (0, 20));
    let mut changed = (*inputs.ingresses[3]).clone();
    changed.metadata.annotations.insert("x".into(), "y".into());
    inputs.ingresses[3] = Arc::new(changed);
    let (_, second) = incremental.compile(&inputs);
    assert_eq!((second.reused, second.lowered), (19, 1));
}
