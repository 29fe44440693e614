//! Kubernetes mode end to end: the real `rauta` binary, configured only by a kubeconfig, against the
//! in-repo fake API server (`rauta-fake-apiserver`, real HTTP API; objects created through it as kubectl
//! would).
//!
//! The fake validates like a real API server and rejects loopback EndpointSlice addresses, so tests that
//! send traffic to backends put them in a network namespace on 198.19.0.0/16 (part of 198.18.0.0/15),
//! reached through a veth from the test's namespace; they need root and `ip` (else "skipped", or a
//! failure under CI=true). Tests that only need "routed or not" use a Service without endpoints: a
//! routed request answers 503, an unrouted one 404.

mod common;

use std::ffi::OsStr;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use rauta_fake_apiserver::{kubeconfig, Client, Config, FakeApiServer, RESOURCES};
use serde_json::{json, Value};

const HOST: &str = "k8s.test";
const INGRESSES: &str = "/apis/networking.k8s.io/v1/namespaces/default/ingresses";
const SERVICES: &str = "/api/v1/namespaces/default/services";
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";

fn ingress(name: &str, path: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
        "spec": {"ingressClassName": "rauta", "rules": [{"host": HOST, "http": {"paths": [
            {"path": path, "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
}

fn service() -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"name": "http", "port": 80}]}})
}

fn slice(endpoints: &[SocketAddr]) -> Value {
    let port = endpoints.first().map_or(80, SocketAddr::port);
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|e| json!({"addresses": [e.ip().to_string()], "conditions": {"ready": true}}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": port}], "endpoints": endpoints})
}

/// The fake API server, a kubeconfig for it and a client to change objects.
struct Cluster {
    server: FakeApiServer,
    api: Client,
    kubeconfig: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(history: usize) -> Cluster {
        let config = Config {
            history,
            bookmark_interval: Duration::from_millis(500),
        };
        let server = FakeApiServer::start("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig(&server.url(), "default")).unwrap();
        let api = Client::new(server.url());
        let class = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "rauta"}, "spec": {"controller": "rauta.io/ingress-controller"}});
        let created = api
            .create("/apis/networking.k8s.io/v1/ingressclasses", &class)
            .await
            .unwrap();
        assert_eq!(created.status, 201, "{:?}", created.body);
        Cluster {
            server,
            api,
            kubeconfig: path,
            _dir: dir,
        }
    }

    async fn create(&self, path: &str, object: Value) {
        let answer = self.api.create(path, &object).await.unwrap();
        assert_eq!(answer.status, 201, "{:?}", answer.body);
    }

    /// The real binary in Kubernetes mode (started off the async workers: startup blocks).
    async fn rauta(&self) -> Rauta {
        let kubeconfig = self.kubeconfig.clone();
        tokio::task::spawn_blocking(move || {
            Rauta::start_from(
                &[OsStr::new("--kubeconfig"), kubeconfig.as_os_str()],
                &["--kernel-tiers", "off"],
            )
        })
        .await
        .unwrap()
    }
}

async fn status(rauta: &Rauta, path: &str) -> u16 {
    get(rauta.http, HOST, path)
        .await
        .map_or(0, |a| a.status.as_u16())
}

/// Routed or not, without backends: see the module comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_restart_with_expired_history_relists_and_serves_meanwhile() {
    let cluster = Cluster::start(5).await;
    cluster.create(SERVICES, service()).await;
    cluster.create(INGRESSES, ingress("keep", "/keep")).await;
    cluster.create(INGRESSES, ingress("gone", "/gone")).await;
    let rauta = cluster.rauta().await;
    assert_eq!(status(&rauta, "/keep").await, 503, "routed, no endpoints");
    assert_eq!(status(&rauta, "/gone").await, 503);
    assert_eq!(status(&rauta, "/other").await, 404);

    // One change reaches the data plane quickly.
    let started = Instant::now();
    cluster.create(INGRESSES, ingress("new", "/new")).await;
    eventually("the new Ingress to route", || async {
        status(&rauta, "/new").await == 503
    })
    .await;
    let took = started.elapsed();
    println!("one Ingress change reached the proxy in {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // The API server goes away; meanwhile an Ingress is deleted and the history compacted, so the
    // controller's watch cannot resume (410 Gone) and must relist.
    let mut server = cluster.server;
    server.stop().await;
    let ingresses = RESOURCES.iter().position(|r| r.kind == "Ingress").unwrap();
    server.store().delete(ingresses, "default", "gone").unwrap();
    server.store().compact();
    // While it is down, the last good table keeps serving.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(&rauta, "/keep").await, 503);
    assert_eq!(status(&rauta, "/gone").await, 503);

    server.restart().await.unwrap();
    eventually("the relist to drop the deleted Ingress", || async {
        status(&rauta, "/gone").await == 404
    })
    .await;
    assert_eq!(status(&rauta, "/keep").await, 503);
    assert_eq!(status(&rauta, "/new").await, 503);

    // The new watch follows changes; deletion removes the route.
    let api = Client::new(server.url());
    api.delete(&format!("{INGRESSES}/keep")).await.unwrap();
    eventually("the deleted Ingress to stop routing", || async {
        status(&rauta, "/keep").await == 404
    })
    .await;
    assert!(
        rauta.logs().iter().any(|l| l.contains("watch failed")),
        "the outage was not noticed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_kubeconfig_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing");
    let (status, _, stderr) = run_to_end(&[
        "run",
        "--kubeconfig",
        path.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--kernel-tiers",
        "off",
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read kubeconfig"), "{stderr}");
}

/// True if the netns test can run; panics under CI=true when it cannot.
fn can_run_netns(test: &str) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ip = Command::new("ip").arg("-V").output().is_ok();
    match (root, ip) {
        (true, true) => true,
        _ if ci => panic!("{test}: CI=true but this test cannot run: needs root (root={root}) and ip (found={ip})"),
        _ => {
            println!("{test}: skipped: needs root and ip");
            false
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace holding the backends, on 198.19.X.0/29 (X from the process id) behind a veth whose other
/// end is in the test's namespace. Deleted on drop (which deletes the veth pair too).
struct BackendNet {
    ns: String,
    host_ip: Ipv4Addr,
}

impl BackendNet {
    fn create() -> BackendNet {
        let id = std::process::id();
        let x = u8::try_from(id % 250).unwrap();
        let net = BackendNet {
            ns: format!("rauta-k8s-{id}"),
            host_ip: Ipv4Addr::new(198, 19, x, 1),
        };
        let (host_dev, ns_dev) = (format!("rk{id}h"), format!("rk{id}n"));
        let host = format!("{}/29", net.host_ip);
        let backends = [2, 3].map(|last| format!("198.19.{x}.{last}/29"));
        ip(&["netns", "add", &net.ns]);
        ip(&[
            "link", "add", &host_dev, "type", "veth", "peer", "name", &ns_dev, "netns", &net.ns,
        ]);
        ip(&["addr", "add", &host, "dev", &host_dev]);
        ip(&["link", "set", &host_dev, "up"]);
        for address in &backends {
            ip(&["-n", &net.ns, "addr", "add", address, "dev", &ns_dev]);
        }
        ip(&["-n", &net.ns, "link", "set", &ns_dev, "up"]);
        ip(&["-n", &net.ns, "link", "set", "lo", "up"]);
        net
    }

    fn backend_ip(&self, last: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.host_ip.octets();
        Ipv4Addr::new(a, b, c, last)
    }

    /// An echo backend named `name` inside the namespace on `addr` (port 0 picks one).
    fn backend(&self, addr: SocketAddr, name: &'static str) -> SocketAddr {
        let ns = self.ns.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        // Lives until the test process exits; the namespace goes once its sockets close.
        std::thread::spawn(move || {
            let file = File::open(format!("/var/run/netns/{ns}")).unwrap();
            // SAFETY: setns with a valid namespace fd; affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (addr, task) = echo::spawn(addr, name).await.unwrap();
                tx.send(addr).unwrap();
                let _ = task.await;
            });
        });
        rx.recv_timeout(PATIENCE).unwrap()
    }
}

impl Drop for BackendNet {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// Which backends answer `n` fresh connections.
async fn answering(rauta: &Rauta, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..n {
        if let Ok(answer) = get(rauta.http, HOST, "/app").await {
            names.push(
                answer
                    .backend()
                    .map_or_else(|| format!("status {}", answer.status), str::to_string),
            );
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_follows_ingress_and_endpointslice_changes() {
    if !can_run_netns("traffic_follows_ingress_and_endpointslice_changes") {
        return;
    }
    let net = BackendNet::create();
    let one = net.backend(SocketAddr::from((net.backend_ip(2), 0)), "one");
    let two = net.backend(SocketAddr::from((net.backend_ip(3), one.port())), "two");

    let cluster = Cluster::start(1000).await;
    cluster.create(SERVICES, service()).await;
    cluster.create(SLICES, slice(&[one])).await;
    cluster.create(INGRESSES, ingress("app", "/app")).await;
    let rauta = cluster.rauta().await;
    let first = get(rauta.http, HOST, "/app").await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.backend(), Some("one"));

    // Scale up: both endpoints get connections.
    let path = format!("{SLICES}/web-1");
    let scaled = cluster.api.put(&path, &slice(&[one, two])).await.unwrap();
    assert_eq!(scaled.status, 200, "{:?}", scaled.body);
    eventually("traffic to reach both endpoints", || async {
        let names = answering(&rauta, 20).await;
        names.iter().any(|n| n == "one") && names.iter().any(|n| n == "two")
    })
    .await;

    // Scale down to the second: the first gets nothing more.
    cluster.api.put(&path, &slice(&[two])).await.unwrap();
    eventually("traffic to leave the removed endpoint", || async {
        answering(&rauta, 10).await.iter().all(|n| n == "two")
    })
    .await;

    // Delete the Ingress: 404.
    cluster
        .api
        .delete(&format!("{INGRESSES}/app"))
        .await
        .unwrap();
    eventually("the route to go", || async {
        status(&rauta, "/app").await == 404
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_endpoints_are_rejected_like_a_real_api_server() {
    let cluster = Cluster::start(100).await;
    let answer = cluster
        .api
        .create(SLICES, &slice(&["127.0.0.1:8080".parse().unwrap()]))
        .await
        .unwrap();
    assert_eq!(answer.status, 422, "{:?}", answer.body);
}

impl Cluster {
    /// A replica publishing `address`, with a 2 s lease.
    async fn replica(&self, address: &'static str) -> Rauta {
        let kubeconfig = self.kubeconfig.clone();
        tokio::task::spawn_blocking(move || {
            Rauta::start_from(
                &[OsStr::new("--kubeconfig"), kubeconfig.as_os_str()],
                &[
                    "--kernel-tiers",
                    "off",
                    "--publish-address",
                    address,
                    "--election-namespace",
                    "rauta-system",
                    "--election-lease-duration",
                    "2s",
                ],
            )
        })
        .await
        .unwrap()
    }

    async fn published(&self, name: &str) -> Value {
        self.api
            .get(&format!("{INGRESSES}/{name}"))
            .await
            .unwrap()
            .body["status"]["loadBalancer"]["ingress"]
            .clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_leader_writes_status_the_other_takes_over() {
    let cluster = Cluster::start(1000).await;
    cluster.create(SERVICES, service()).await;
    cluster.create(INGRESSES, ingress("ours", "/ours")).await;
    let mut theirs = ingress("theirs", "/theirs");
    theirs["spec"]["ingressClassName"] = json!("nginx");
    cluster.create(INGRESSES, theirs).await;

    let first = cluster.replica("198.18.0.10").await;
    first.wait_for_log("became the leader");
    let second = cluster.replica("198.18.0.11").await;
    eventually("the leader to write status", || async {
        cluster.published("ours").await == json!([{"ip": "198.18.0.10"}])
    })
    .await;
    // Both serve traffic; only one leads; the other class is never touched.
    assert_eq!(status(&first, "/ours").await, 503);
    assert_eq!(status(&second, "/ours").await, 503);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!second
        .logs()
        .iter()
        .any(|l| l.contains("became the leader")));
    assert_eq!(
        cluster.published("ours").await,
        json!([{"ip": "198.18.0.10"}])
    );
    assert_eq!(cluster.published("theirs").await, Value::Null);
    let lease = cluster
        .api
        .get("/apis/coordination.k8s.io/v1/namespaces/rauta-system/leases/rauta-rauta")
        .await
        .unwrap();
    assert_eq!(lease.status, 200);

    // The leader dies (SIGKILL): the other takes over within the lease duration (plus a retry period).
    let stopped = Instant::now();
    drop(first);
    eventually("the second replica to take over", || async {
        cluster.published("ours").await == json!([{"ip": "198.18.0.11"}])
    })
    .await;
    let took = stopped.elapsed();
    println!("takeover after {took:?}");
    assert!(took < Duration::from_millis(3000), "took {took:?}");
    assert_eq!(cluster.published("theirs").await, Value::Null);
}

async fn events(cluster: &Cluster) -> Vec<(String, String, String)> {
    let list = cluster
        .api
        .get("/apis/events.k8s.io/v1/namespaces/default/events")
        .await
        .unwrap();
    let mut events: Vec<(String, String, String)> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["regarding"]["name"].as_str().unwrap_or("").to_string(),
                e["reason"].as_str().unwrap_or("").to_string(),
                e["note"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    events.sort();
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_problems_become_deduplicated_events_on_the_ingress() {
    let cluster = Cluster::start(1000).await;
    cluster.create(SERVICES, service()).await;
    let mut missing = ingress("missing-service", "/missing");
    missing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = json!("nope");
    cluster.create(INGRESSES, missing).await;
    let mut tls = ingress("missing-secret", "/tls");
    tls["spec"]["tls"] = json!([{"hosts": [HOST], "secretName": "no-such-cert"}]);
    cluster.create(INGRESSES, tls).await;
    let rauta = cluster.rauta().await;

    // The Service without EndpointSlices is a third problem (NoEndpoints) on the TLS Ingress.
    eventually("an Event per problem", || async {
        events(&cluster).await.len() >= 3
    })
    .await;
    let all = events(&cluster).await;
    assert_eq!(all.len(), 3, "{all:?}");
    let found: Vec<_> = all.iter().filter(|e| e.1 != "NoEndpoints").collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].0, "missing-secret");
    assert_eq!(found[0].1, "TLSSecret");
    assert!(found[0].2.contains("no-such-cert"), "{found:?}");
    assert_eq!(found[1].0, "missing-service");
    assert_eq!(found[1].1, "BackendNotFound");

    // Another change recompiles; the same problems are not reported again.
    cluster.create(INGRESSES, ingress("fine", "/fine")).await;
    eventually("the recompile", || async {
        status(&rauta, "/fine").await == 503
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ("fine" has its own NoEndpoints problem, reported once.)
    let after: Vec<_> = events(&cluster)
        .await
        .into_iter()
        .filter(|e| e.0 != "fine")
        .collect();
    assert_eq!(after, all);
}

impl Cluster {
    /// A replica with `args` after the kubeconfig and `--kernel-tiers off`.
    async fn replica_with(&self, args: &'static [&'static str]) -> Rauta {
        let kubeconfig = self.kubeconfig.clone();
        tokio::task::spawn_blocking(move || {
            let mut all = vec!["--kernel-tiers", "off"];
            all.extend_from_slice(args);
            Rauta::start_from(&[OsStr::new("--kubeconfig"), kubeconfig.as_os_str()], &all)
        })
        .await
        .unwrap()
    }

    async fn lease_holder(&self) -> Value {
        self.api
            .get("/apis/coordination.k8s.io/v1/namespaces/rauta-system/leases/rauta-rauta")
            .await
            .unwrap()
            .body["spec"]["holderIdentity"]
            .clone()
    }
}

/// An Ingress that leaves RAUTA's class loses the address RAUTA published; one that another controller
/// has written meanwhile, or that never was RAUTA's, is left alone. Status is written with `update` on
/// `ingresses/status` (the verb deploy/rbac.yaml grants; tests/rbac.rs checks the verbs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_leaving_the_class_has_its_published_address_removed() {
    let cluster = Cluster::start(1000).await;
    cluster.create(SERVICES, service()).await;
    cluster
        .create(INGRESSES, ingress("leaving", "/leaving"))
        .await;
    cluster.create(INGRESSES, ingress("taken", "/taken")).await;
    let mut theirs = ingress("theirs", "/theirs");
    theirs["spec"]["ingressClassName"] = json!("nginx");
    cluster.create(INGRESSES, theirs.clone()).await;
    let other_lb = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.99"}]}}});
    let answer = cluster
        .api
        .merge_patch(&format!("{INGRESSES}/theirs/status"), &other_lb)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);

    let rauta = cluster.replica("198.18.0.10").await;
    rauta.wait_for_log("became the leader");
    for name in ["leaving", "taken"] {
        eventually("the leader to write status", || async {
            cluster.published(name).await == json!([{"ip": "198.18.0.10"}])
        })
        .await;
    }

    // "taken" moves to another class whose controller writes its address first: not touched.
    let mut taken = ingress("taken", "/taken");
    taken["spec"]["ingressClassName"] = json!("nginx");
    let answer = cluster
        .api
        .put(&format!("{INGRESSES}/taken"), &taken)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let answer = cluster
        .api
        .merge_patch(&format!("{INGRESSES}/taken/status"), &other_lb)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    // "leaving" moves to another class: its address is removed.
    let mut leaving = ingress("leaving", "/leaving");
    leaving["spec"]["ingressClassName"] = json!("nginx");
    let answer = cluster
        .api
        .put(&format!("{INGRESSES}/leaving"), &leaving)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    eventually("the address to be removed", || async {
        cluster.published("leaving").await == json!([])
    })
    .await;
    rauta.wait_for_log("cleared the status of an Ingress that left our class");
    eventually("the route to go", || async {
        status(&rauta, "/leaving").await == 404
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cluster.published("taken").await,
        json!([{"ip": "198.18.0.99"}])
    );
    assert_eq!(
        cluster.published("theirs").await,
        json!([{"ip": "198.18.0.99"}])
    );
    // Every status write was an update of the status subresource, none a patch.
    let writes: Vec<_> = cluster
        .server
        .store()
        .requests()
        .into_iter()
        .filter(|r| r.subresource == "status" && r.resource == "ingresses")
        .map(|r| r.verb)
        .collect();
    assert!(writes.contains(&"update"), "{writes:?}");
    // (The test's own two merge patches are the only patches.)
    assert_eq!(
        writes.iter().filter(|v| **v == "patch").count(),
        2,
        "{writes:?}"
    );
}

/// On SIGTERM the leader gives the Lease up, so the other replica takes over at once instead of after
/// the lease duration (30 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_lease_and_the_other_replica_takes_over_at_once() {
    const ARGS: &[&str] = &[
        "--publish-address",
        "198.18.0.10",
        "--election-namespace",
        "rauta-system",
        "--election-lease-duration",
        "30s",
    ];
    let cluster = Cluster::start(1000).await;
    cluster.create(SERVICES, service()).await;
    cluster.create(INGRESSES, ingress("ours", "/ours")).await;
    let mut first = cluster.replica_with(ARGS).await;
    first.wait_for_log("became the leader");
    let first_holder = cluster.lease_holder().await;
    assert!(first_holder.as_str().is_some_and(|h| !h.is_empty()));
    let second = cluster.replica_with(ARGS).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stopped = Instant::now();
    first.signal("TERM");
    let exit = first.wait_exit(Duration::from_secs(10)).expect("no exit");
    assert!(exit.success(), "{exit:?}");
    assert!(
        first
            .logs()
            .iter()
            .any(|l| l.contains("released the leadership")),
        "{:?}",
        first.logs()
    );
    second.wait_for_log("became the leader");
    let took = stopped.elapsed();
    println!("takeover after SIGTERM: {took:?}");
    // The second replica retries every 2 s (a quarter of the lease, at most 2 s).
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let holder = cluster.lease_holder().await;
    assert!(
        holder.as_str().is_some_and(|h| !h.is_empty()) && holder != first_holder,
        "{holder:?}"
    );
}

/// Two replicas that both see a problem create one Event for it, with leader election (only the leader
/// records) and without (no address to publish: the Event's name is the same on both replicas, and the
/// API server rejects the second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_record_each_problem_once() {
    for election in [false, true] {
        let cluster = Cluster::start(1000).await;
        let mut missing = ingress("missing-service", "/missing");
        missing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] =
            json!("nope");
        cluster.create(INGRESSES, missing).await;
        const ELECTION: &[&str] = &[
            "--publish-address",
            "198.18.0.10",
            "--election-namespace",
            "rauta-system",
            "--election-lease-duration",
            "2s",
        ];
        let args: &'static [&'static str] = if election { ELECTION } else { &[] };
        let first = cluster.replica_with(args).await;
        let second = cluster.replica_with(args).await;
        eventually("an Event", || async { !events(&cluster).await.is_empty() }).await;
        if !election {
            // Both replicas tried: one created the Event, the other found it there.
            for replica in [&first, &second] {
                eventually("each replica to record or find the Event", || async {
                    replica.logs().iter().any(|l| {
                        l.contains("recorded Events")
                            || l.contains("another replica recorded this problem")
                    })
                })
                .await;
            }
        }
        // A change makes both recompile; still one Event.
        cluster.create(SERVICES, service()).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let all = events(&cluster).await;
        assert_eq!(all.len(), 1, "election={election}: {all:?}");
        assert_eq!(all[0].0, "missing-service");
        assert_eq!(all[0].1, "BackendNotFound");
    }
}
