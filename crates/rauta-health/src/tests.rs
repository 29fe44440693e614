//! The shared state end to end, without a proxy: a compiled table in, picks out, failures reported, the
//! control task rebuilding the pick table.

use std::collections::HashMap;

use prometheus_client::encoding::text::encode;
use rauta_routes::model::Inputs;
use rauta_routes::{compile, CompileOptions, PortRef};

use super::*;

/// A table routing host `h` to Service `shop/web` port 80 over `endpoints`, with Service `annotations`.
fn table(endpoints: &[SocketAddr], annotations: serde_json::Value) -> RouteTable {
    let service = serde_json::json!({
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": {"ports": [{"name": "http", "port": 80}]}
    });
    let slice = serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": endpoints[0].port()}],
        "endpoints": endpoints.iter().map(|e| serde_json::json!({"addresses": [e.ip().to_string()]}))
            .collect::<Vec<_>>(),
    });
    let ingress = serde_json::json!({
        "metadata": {"name": "ing", "namespace": "shop"},
        "spec": {"ingressClassName": "rauta", "rules": [{"host": "h", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    });
    let inputs = Inputs {
        ingresses: vec![serde_json::from_value(ingress).unwrap()],
        services: vec![serde_json::from_value(service).unwrap()],
        endpoint_slices: vec![serde_json::from_value(slice).unwrap()],
        ..Inputs::default()
    };
    let compiled = compile(&inputs, &CompileOptions::default());
    assert!(
        compiled.diagnostics.is_empty(),
        "{:?}",
        compiled.diagnostics
    );
    compiled.table
}

fn web() -> ServiceRef {
    ServiceRef {
        namespace: "shop".into(),
        name: "web".into(),
        port: PortRef::Number(80),
    }
}

fn backend_of(table: &RouteTable) -> Arc<Backend> {
    table.routes()[0].backend.clone()
}

fn clients() -> impl Iterator<Item = SocketAddr> {
    (1..=2000u16).map(|p| SocketAddr::from(([192, 0, 2, 7], 10000 + p)))
}

/// Health following `table`, with its registry; waits until the table is applied.
async fn following(table: RouteTable) -> (Health, Registry, Arc<ArcSwap<RouteTable>>) {
    let mut registry = Registry::default();
    let health = Health::new(&mut registry);
    let routes = Arc::new(ArcSwap::from_pointee(table));
    tokio::spawn(health.clone().follow(routes.clone()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while health.endpoints_of(&web()).is_empty() {
        assert!(Instant::now() < deadline, "table never applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (health, registry, routes)
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn metrics_text(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

#[tokio::test]
async fn failures_eject_an_endpoint_moving_only_its_flows_and_retries_go_elsewhere() {
    let endpoints: Vec<SocketAddr> = (1..=5u8)
        .map(|i| SocketAddr::from(([127, 0, 0, i], 8080)))
        .collect();
    // A long ejection: no probe back during the test.
    let t = table(
        &endpoints,
        serde_json::json!({"rauta.io/outlier-base-ejection-time": "60s"}),
    );
    let (health, registry, routes) = following(t).await;
    let backend = backend_of(&routes.load());
    let before: HashMap<SocketAddr, SocketAddr> = clients()
        .map(|c| (c, health.pick(&backend, c).unwrap().endpoint))
        .collect();
    // With every endpoint healthy the pick is the backend's own table (the kernel tiers' choice).
    assert!(clients().all(|c| backend.pick(c) == Some(before[&c])));

    let victim = endpoints[2];
    let client = clients().find(|c| before[c] == victim).unwrap();
    let pick = health.pick(&backend, client).unwrap();
    // A success in between restarts the count.
    for _ in 0..4 {
        pick.report(Outcome::Failure);
    }
    pick.report(Outcome::Success);
    for _ in 0..4 {
        pick.report(Outcome::Failure);
    }
    assert!(health.endpoints_of(&web()).iter().all(|(_, ok)| *ok));
    pick.report(Outcome::Failure);
    wait_until("the victim leaves the pick table", || {
        clients().all(|c| health.pick(&backend, c).unwrap().endpoint != victim)
    })
    .await;
    let stayed = clients()
        .filter(|c| before[c] != victim)
        .filter(|&c| health.pick(&backend, c).unwrap().endpoint == before[&c])
        .count();
    let others = clients().filter(|c| before[c] != victim).count();
    assert!(
        stayed * 100 >= others * 90,
        "only {stayed} of {others} other flows kept their endpoint"
    );
    let text = metrics_text(&registry);
    assert!(
        text.contains(&format!(
            "rauta_endpoint_healthy{{service=\"shop/web:80\",endpoint=\"{victim}\"}} 0"
        )),
        "{text}"
    );
    assert!(
        text.contains("rauta_endpoint_ejections_total{service=\"shop/web:80\"} 1"),
        "{text}"
    );

    // A retry goes to another endpoint, never back to the ejected one.
    let first = health.pick(&backend, client).unwrap();
    let second = first.retry().unwrap();
    assert_ne!(second.endpoint, first.endpoint);
    assert_ne!(second.endpoint, victim);
    assert!(
        metrics_text(&registry).contains("rauta_upstream_retries_total{service=\"shop/web:80\"} 1")
    );

    // A reload with the same endpoints keeps the ejection (state follows the Service port and address);
    // one without the victim drops its series.
    routes.store(Arc::new(table(
        &endpoints,
        serde_json::json!({"rauta.io/outlier-base-ejection-time": "60s"}),
    )));
    health.table_swapped();
    let backend = backend_of(&routes.load());
    wait_until("the new table is applied", || {
        health
            .pick(&backend, client)
            .is_some_and(|p| p.tracked.is_some())
    })
    .await;
    assert!(clients().all(|c| health.pick(&backend, c).unwrap().endpoint != victim));
    let fewer: Vec<SocketAddr> = endpoints.iter().copied().filter(|e| *e != victim).collect();
    routes.store(Arc::new(table(&fewer, serde_json::json!({}))));
    health.table_swapped();
    wait_until("the victim's series is gone", || {
        !metrics_text(&registry).contains(&victim.to_string())
    })
    .await;
}

#[tokio::test]
async fn every_endpoint_ejected_fails_open() {
    let endpoints: Vec<SocketAddr> = (1..=2u8)
        .map(|i| SocketAddr::from(([127, 0, 0, i], 8080)))
        .collect();
    let t = table(
        &endpoints,
        serde_json::json!({"rauta.io/outlier-base-ejection-time": "60s",
                           "rauta.io/outlier-consecutive-failures": "1"}),
    );
    let (health, registry, routes) = following(t).await;
    let backend = backend_of(&routes.load());
    for e in &endpoints {
        let c = clients()
            .find(|&c| health.pick(&backend, c).unwrap().endpoint == *e)
            .unwrap();
        health.pick(&backend, c).unwrap().report(Outcome::Failure);
        // Wait for each rebuild, so the second endpoint is still pickable when its turn comes.
        wait_until("ejection applied", || {
            health
                .endpoints_of(&web())
                .iter()
                .any(|(a, ok)| a == e && !ok)
        })
        .await;
    }
    wait_until("fail open", || {
        metrics_text(&registry).contains("rauta_backend_fail_open{service=\"shop/web:80\"} 1")
    })
    .await;
    // Every endpoint takes requests again.
    let picked: std::collections::BTreeSet<SocketAddr> = clients()
        .map(|c| health.pick(&backend, c).unwrap().endpoint)
        .collect();
    assert_eq!(picked.into_iter().collect::<Vec<_>>(), endpoints);
}

#[tokio::test]
async fn the_kernel_view_is_the_pick_table_and_the_observer_hears_every_change() {
    let endpoints: Vec<SocketAddr> = (1..=3u8)
        .map(|i| SocketAddr::from(([127, 0, 0, i], 8080)))
        .collect();
    let t = table(
        &endpoints,
        serde_json::json!({"rauta.io/outlier-base-ejection-time": "60s"}),
    );
    let mut registry = Registry::default();
    let health = Health::new(&mut registry);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    health.on_change(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let routes = Arc::new(ArcSwap::from_pointee(t));
    tokio::spawn(health.clone().follow(routes.clone()));
    let backend = backend_of(&routes.load());
    wait_until("the table is applied and observed", || {
        calls.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    // Every endpoint healthy: the backend's own table (the kernel keeps it).
    assert_eq!(health.healthy_slots(&backend), None);

    let victim = endpoints[1];
    let client = clients()
        .find(|&c| health.pick(&backend, c).unwrap().endpoint == victim)
        .unwrap();
    let seen = calls.load(std::sync::atomic::Ordering::SeqCst);
    let pick = health.pick(&backend, client).unwrap();
    for _ in 0..10 {
        pick.report(Outcome::Failure);
    }
    wait_until("the ejection is observed", || {
        calls.load(std::sync::atomic::Ordering::SeqCst) > seen
            && health.healthy_slots(&backend).is_some()
    })
    .await;
    let slots = health.healthy_slots(&backend).unwrap();
    assert!(
        rauta_maglev::is_prime(slots.len() as u32),
        "{}",
        slots.len()
    );
    assert!(!slots.contains(&victim));
    // Slot maglev_slot(flow_hash, len) is what Tier 3 picks: the kernel chooses alike.
    for c in clients() {
        let slot = rauta_common::flow::maglev_slot(flow_hash(c), slots.len() as u32);
        assert_eq!(
            slots[slot as usize],
            health.pick(&backend, c).unwrap().endpoint
        );
    }
}
