//! Kubernetes mode at scale (the issue-5 benchmark): 5,000 Ingresses with 2 paths each in the fake API
//! server; time from start to ready, time from one Ingress update to the new route serving, and the
//! controller's RSS. Ignored by default (it takes a while in debug builds); run with
//! `cargo test --release -p rauta --test kubernetes_scale -- --ignored --nocapture`.
//! Results go to docs/benchmarks.md.
//!
//! For heap profiles: `RAUTA_SCALE_WRAPPER="heaptrack -o /tmp/rauta"` starts the binary under that
//! command (the RSS is then read from the `rauta` process below it), and `RAUTA_SCALE_UPDATES=N` sets the
//! number of updates (default 20; 0 stops at ready). The process is killed at the end, so heaptrack's
//! "leaked" figure is what was live at that moment.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rauta_fake_apiserver::{kubeconfig, Client, Config, FakeApiServer};
use serde_json::{json, Value};

const INGRESSES: usize = 5_000;
const SERVICES: usize = 100;

fn ingress(i: usize) -> Value {
    let path = |p: &str| {
        json!({"path": format!("/app-{i}/{p}"), "pathType": "Prefix",
            "backend": {"service": {"name": format!("svc-{}", i % SERVICES), "port": {"number": 80}}}})
    };
    json!({"metadata": {"name": format!("ing-{i}")}, "spec": {"ingressClassName": "rauta",
        "rules": [{"host": format!("h{}.scale.test", i % 50), "http": {"paths": [path("a"), path("b")]}}]}})
}

/// The `rauta` process: `pid` itself, or (under a wrapper such as heaptrack) its descendant.
fn rauta_pid(pid: u32) -> u32 {
    let exe = std::fs::canonicalize(RAUTA).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut queue = vec![pid];
        while let Some(p) = queue.pop() {
            if std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == exe) {
                return p;
            }
            let children =
                std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
            queue.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        assert!(Instant::now() < deadline, "no rauta process below {pid}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --release"]
async fn five_thousand_ingresses() {
    let server = FakeApiServer::start("127.0.0.1:0".parse().unwrap(), Config::default())
        .await
        .unwrap();
    let api = Client::new(server.url());
    let class = json!({"metadata": {"name": "rauta"}, "spec": {"controller": "rauta.io/ingress-controller"}});
    api.create("/apis/networking.k8s.io/v1/ingressclasses", &class)
        .await
        .unwrap();
    for s in 0..SERVICES {
        let svc =
            json!({"metadata": {"name": format!("svc-{s}")}, "spec": {"ports": [{"port": 80}]}});
        api.create("/api/v1/namespaces/default/services", &svc)
            .await
            .unwrap();
        // One endpoint, not ready: routes resolve (no diagnostic), and requests answer 503 without any
        // connection attempt (so no traffic leaves the machine).
        let slice = json!({"metadata": {"name": format!("svc-{s}-1"),
                "labels": {"kubernetes.io/service-name": format!("svc-{s}")}},
            "addressType": "IPv4", "ports": [{"port": 8080}],
            "endpoints": [{"addresses": [format!("198.18.1.{}", s + 1)], "conditions": {"ready": false}}]});
        let answer = api
            .create(
                "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                &slice,
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 201, "{:?}", answer.body);
    }
    for i in 0..INGRESSES {
        let answer = api
            .create(
                "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
                &ingress(i),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 201);
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig(&server.url(), "default")).unwrap();
    // Started directly (not through common::Rauta, which logs at debug level) so that logging does not
    // weigh on the numbers.
    let started = Instant::now();
    let wrapper = std::env::var("RAUTA_SCALE_WRAPPER").unwrap_or_default();
    let mut wrapper = wrapper.split_whitespace();
    let mut command = match wrapper.next() {
        Some(program) => {
            let mut command = std::process::Command::new(program);
            command.args(wrapper).arg(RAUTA);
            command
        }
        None => std::process::Command::new(RAUTA),
    };
    let mut child = command
        .args(["run", "--kubeconfig"])
        .arg(&path)
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--kernel-tiers",
            "off",
        ])
        .args(["--print-listen-addrs", "--log-level", "warn"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A wrapper may print lines of its own first.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let http: std::net::SocketAddr = loop {
        let mut line = String::new();
        let read = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(read > 0, "no listen line");
        if let Some(addr) = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("http="))
        {
            break addr.parse().unwrap();
        }
    };
    let pid = rauta_pid(child.id());
    let ready = started.elapsed();
    let last = INGRESSES - 1;
    let answer = get(
        http,
        &format!("h{}.scale.test", last % 50),
        &format!("/app-{last}/b"),
    )
    .await
    .unwrap();
    assert_eq!(
        answer.status, 503,
        "the last Ingress is routed (no endpoints)"
    );
    let rss_ready = rss_kib(pid);

    let mut updates = Vec::new();
    let rounds: usize = std::env::var("RAUTA_SCALE_UPDATES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    for round in 0..rounds {
        let i = round * 97 % INGRESSES;
        let mut changed = ingress(i);
        changed["spec"]["rules"][0]["http"]["paths"][1]["path"] =
            json!(format!("/app-{i}/new-{round}"));
        let host = format!("h{}.scale.test", i % 50);
        let new_path = format!("/app-{i}/new-{round}");
        let t = Instant::now();
        let answer = api
            .put(
                &format!("/apis/networking.k8s.io/v1/namespaces/default/ingresses/ing-{i}"),
                &changed,
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        loop {
            if get(http, &host, &new_path).await.unwrap().status == 503 {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "update never served");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        updates.push(t.elapsed());
    }
    updates.sort();
    if updates.is_empty() {
        updates.push(Duration::ZERO);
    }
    let rss_after = rss_kib(pid);
    println!(
        "ingresses={INGRESSES} paths={} ready={ready:?} update_median={:?} update_max={:?} rss_ready={} MiB rss_after_updates={} MiB",
        INGRESSES * 2,
        updates[updates.len() / 2],
        updates[updates.len() - 1],
        rss_ready / 1024,
        rss_after / 1024
    );
    // SIGKILL to rauta itself (not a graceful stop): a heap profiler then reports what was live now.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}
