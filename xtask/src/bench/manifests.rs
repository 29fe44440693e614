//! Generated manifests for the benchmarks: one Service with one loopback endpoint, and Ingresses with as
//! many paths as asked for.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// Paths per generated Ingress: large enough to be realistic, small enough that a reload of one object
/// would stay cheap.
const PATHS_PER_INGRESS: usize = 100;

/// Writes `dir/bench.yaml`: the IngressClass, Service `bench/backend:80` with endpoint `backend`, and
/// `paths` Prefix paths spread over Ingresses of [`PATHS_PER_INGRESS`] paths, each Ingress on its own host
/// (`h<i>.bench.example`). With `paths == 0` only a hostless `/` rule is written when `catch_all` is set,
/// else no Ingress at all.
pub fn write(dir: &Path, backend: &str, paths: usize, catch_all: bool) -> Result<()> {
    let (ip, port) = backend
        .rsplit_once(':')
        .context("backend must be IP:PORT")?;
    let mut y = String::new();
    let _ = write!(
        y,
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: rauta\nspec:\n  controller: rauta.io/ingress-controller\n---\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: backend\n  namespace: bench\nspec:\n  ports:\n    - name: http\n      port: 80\n      targetPort: {port}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: backend-1\n  namespace: bench\n  labels:\n    kubernetes.io/service-name: backend\n\
         addressType: IPv4\nports:\n  - name: http\n    port: {port}\n    protocol: TCP\nendpoints:\n  - addresses: [\"{ip}\"]\n"
    );
    if catch_all {
        y.push_str(&ingress("catch-all", None, &["/"]));
    }
    let names: Vec<String> = (0..paths).map(|i| format!("/p{i}")).collect();
    for (n, chunk) in names.chunks(PATHS_PER_INGRESS).enumerate() {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        y.push_str(&ingress(
            &format!("gen-{n}"),
            Some(&format!("h{n}.bench.example")),
            &refs,
        ));
    }
    std::fs::create_dir_all(dir)?;
    let file = dir.join("bench.yaml");
    std::fs::write(&file, y).with_context(|| format!("cannot write {}", file.display()))
}

fn ingress(name: &str, host: Option<&str>, paths: &[&str]) -> String {
    let mut y = format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: bench\n\
         spec:\n  ingressClassName: rauta\n  rules:\n"
    );
    match host {
        Some(h) => {
            let _ = writeln!(y, "    - host: {h}\n      http:\n        paths:");
        }
        None => y.push_str("    - http:\n        paths:\n"),
    }
    for p in paths {
        let _ = writeln!(
            y,
            "          - path: {p}\n            pathType: Prefix\n            backend:\n              service:\n                name: backend\n                port:\n                  number: 80"
        );
    }
    y
}
