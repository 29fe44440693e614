//! A single-threaded proxy for loopback benchmarks against nginx with one worker:
//! `cargo run --release -p rauta-proxy --example bench_proxy -- 127.0.0.1:18080 127.0.0.1:18081`
//! routes every request (any host, prefix `/`) to the backend address given second.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rauta_proxy::{bind_listener, Proxy, ProxyConfig, ProxyMetrics};
use rauta_routes::model::Inputs;
use rauta_routes::{compile, CompileOptions};
use serde_json::json;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18080".into())
        .parse()
        .expect("listen addr");
    let backend: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18081".into())
        .parse()
        .expect("backend addr");
    let mut inputs = Inputs::default();
    inputs.ingresses.push(
        serde_json::from_value(
            json!({"metadata": {"name": "bench"}, "spec": {"ingressClassName": "rauta",
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "bench", "port": {"number": 80}}}}]}}]}}),
        )
        .expect("ingress"),
    );
    inputs.services.push(
        serde_json::from_value(
            json!({"metadata": {"name": "bench"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .expect("service"),
    );
    inputs.endpoint_slices.push(
        serde_json::from_value(
            json!({"metadata": {"name": "bench", "labels": {"kubernetes.io/service-name": "bench"}},
            "addressType": "IPv4", "endpoints": [{"addresses": [backend.ip().to_string()]}],
            "ports": [{"port": backend.port()}]}),
        )
        .expect("slice"),
    );
    let table = compile(&inputs, &CompileOptions::default()).table;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let proxy = Proxy::new(
            ProxyConfig::default(),
            Arc::new(ArcSwap::from_pointee(table)),
            ProxyMetrics::unregistered(),
        );
        let listener = bind_listener(listen)?;
        proxy
            .serve_http(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    })
}
