//! rauta-k8s against the fake API server through a real kubeconfig and kube client: initial sync,
//! changes within the debounce bound, Secrets bounded to the referenced ones, and recovery from an
//! API-server restart with expired history (relist, no stale objects).

use std::time::{Duration, Instant};

use rauta_fake_apiserver::{kubeconfig, Client, Config, FakeApiServer, RESOURCES};
use rauta_k8s::{Snapshot, WatchConfig, Watching};
use serde_json::{json, Value};

const NS: &str = "default";

fn ingress(name: &str, path: &str, secret: Option<&str>) -> Value {
    let mut ingress = json!({"metadata": {"name": name}, "spec": {"ingressClassName": "rauta",
        "rules": [{"host": "a.example", "http": {"paths": [{"path": path, "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
    if let Some(secret) = secret {
        ingress["spec"]["tls"] = json!([{"hosts": ["a.example"], "secretName": secret}]);
    }
    ingress
}

fn tls_secret(name: &str) -> Value {
    json!({"metadata": {"name": name}, "type": "kubernetes.io/tls",
           "stringData": {"tls.crt": "CERT", "tls.key": "KEY"}})
}

struct Setup {
    server: FakeApiServer,
    api: Client,
    watching: Watching,
    _dir: tempfile::TempDir,
}

async fn setup(history: usize) -> Setup {
    let config = Config {
        history,
        bookmark_interval: Duration::from_millis(200),
    };
    let server = FakeApiServer::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig(&server.url(), NS)).unwrap();
    let client = rauta_k8s::client(Some(&path)).await.unwrap();
    let watching = rauta_k8s::start(client, WatchConfig::new("rauta"));
    let api = Client::new(server.url());
    Setup {
        server,
        api,
        watching,
        _dir: dir,
    }
}

/// Wait (bounded) for a snapshot satisfying `check`.
async fn until(watching: &mut Watching, what: &str, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(snapshot) = watching.snapshots.borrow_and_update().clone() {
            if check(&snapshot) {
                return snapshot;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            tokio::time::timeout(left, watching.snapshots.changed())
                .await
                .is_ok(),
            "timed out waiting for {what}"
        );
    }
}

fn paths(snapshot: &Snapshot) -> Vec<String> {
    let mut paths: Vec<String> = snapshot
        .inputs
        .ingresses
        .iter()
        .flat_map(|i| i.spec.rules.iter())
        .flat_map(|r| r.http.iter().flat_map(|h| h.paths.iter()))
        .filter_map(|p| p.path.clone())
        .collect();
    paths.sort();
    paths
}

const INGRESSES: &str = "/apis/networking.k8s.io/v1/namespaces/default/ingresses";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";

#[tokio::test]
async fn changes_arrive_quickly_and_secrets_are_bounded() {
    let mut s = setup(1000).await;
    s.api
        .create(INGRESSES, &ingress("one", "/one", None))
        .await
        .unwrap();
    until(&mut s.watching, "initial sync", |snap| {
        paths(snap) == ["/one"]
    })
    .await;

    // One change reaches a snapshot well within 100 ms.
    let started = Instant::now();
    s.api
        .create(INGRESSES, &ingress("two", "/two", None))
        .await
        .unwrap();
    until(&mut s.watching, "the new ingress", |snap| {
        paths(snap).len() == 2
    })
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(100), "took {took:?}");

    // A burst compiles once (or very few times), not once per object.
    let before = s.watching.snapshots.borrow().as_ref().unwrap().generation;
    for i in 0..20 {
        s.api
            .create(
                INGRESSES,
                &ingress(&format!("burst-{i}"), &format!("/b{i}"), None),
            )
            .await
            .unwrap();
    }
    let after = until(&mut s.watching, "the burst", |snap| paths(snap).len() == 22).await;
    assert!(
        after.generation - before <= 5,
        "{} snapshots for one burst",
        after.generation - before
    );

    // Secrets: only the referenced TLS one is kept.
    s.api.create(SECRETS, &tls_secret("used")).await.unwrap();
    s.api.create(SECRETS, &tls_secret("unused")).await.unwrap();
    s.api
        .create(
            SECRETS,
            &json!({"metadata": {"name": "opaque"}, "stringData": {"x": "y"}}),
        )
        .await
        .unwrap();
    s.api
        .create(INGRESSES, &ingress("tls", "/tls", Some("used")))
        .await
        .unwrap();
    let snap = until(&mut s.watching, "the referenced secret", |snap| {
        !snap.inputs.secrets.is_empty()
    })
    .await;
    let names: Vec<&str> = snap
        .inputs
        .secrets
        .iter()
        .map(|s| s.metadata.name.as_str())
        .collect();
    assert_eq!(names, ["used"]);
    assert!(
        paths(&snap).contains(&"/tls".to_string()),
        "route published without waiting for its secret"
    );

    // Rotation reaches the snapshot.
    let rotated = json!({"stringData": {"tls.crt": "NEW"}});
    s.api
        .merge_patch(&format!("{SECRETS}/used"), &rotated)
        .await
        .unwrap();
    until(&mut s.watching, "the rotated secret", |snap| {
        snap.inputs
            .secrets
            .iter()
            .any(|s| s.data.get("tls.crt").map(String::as_str) == Some("TkVX"))
    })
    .await;
    // Unreferenced again: dropped.
    s.api.delete(&format!("{INGRESSES}/tls")).await.unwrap();
    until(&mut s.watching, "the secret to be dropped", |snap| {
        snap.inputs.secrets.is_empty()
    })
    .await;
}

#[tokio::test]
async fn restart_with_expired_history_relists_without_stale_objects() {
    let mut s = setup(5).await;
    s.api
        .create(INGRESSES, &ingress("keep", "/keep", None))
        .await
        .unwrap();
    s.api
        .create(INGRESSES, &ingress("gone", "/gone", None))
        .await
        .unwrap();
    until(&mut s.watching, "initial sync", |snap| {
        paths(snap) == ["/gone", "/keep"]
    })
    .await;

    // While the API server is down, an object goes away and the history is compacted: the watch cannot
    // resume from its version (410) and must relist.
    s.server.stop().await;
    let ingresses = RESOURCES.iter().position(|r| r.kind == "Ingress").unwrap();
    s.server.store().delete(ingresses, NS, "gone").unwrap();
    s.server.store().compact();
    // Down for a moment: the last snapshot stays.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        paths(s.watching.snapshots.borrow().as_ref().unwrap()),
        ["/gone", "/keep"]
    );
    s.server.restart().await.unwrap();
    until(&mut s.watching, "the relist", |snap| {
        paths(snap) == ["/keep"]
    })
    .await;

    // And the new watch follows changes.
    s.api
        .create(INGRESSES, &ingress("after", "/after", None))
        .await
        .unwrap();
    until(&mut s.watching, "a change after the restart", |snap| {
        paths(snap) == ["/after", "/keep"]
    })
    .await;
}

async fn replica(
    server: &FakeApiServer,
    dir: &std::path::Path,
    id: &str,
    address: &str,
) -> (Watching, tokio::sync::watch::Receiver<bool>) {
    let path = dir.join(format!("kubeconfig-{id}"));
    std::fs::write(&path, kubeconfig(&server.url(), NS)).unwrap();
    let client = rauta_k8s::client(Some(&path)).await.unwrap();
    let mut watching = rauta_k8s::start(client, WatchConfig::new("rauta"));
    let election = rauta_k8s::ElectionConfig {
        namespace: "rauta-system".into(),
        name: "rauta-rauta".into(),
        identity: id.into(),
        lease_duration: Duration::from_secs(2),
    };
    let leader = watching.publish_status(rauta_k8s::Publish::Address(address.into()), election);
    (watching, leader)
}

async fn published(api: &Client, name: &str) -> Value {
    api.get(&format!("{INGRESSES}/{name}")).await.unwrap().body["status"]["loadBalancer"]["ingress"]
        .clone()
}

#[tokio::test]
async fn one_leader_writes_status_and_another_takes_over() {
    let s = setup(1000).await;
    let mut other = ingress("other", "/other", None);
    other["spec"]["ingressClassName"] = json!("nginx");
    s.api.create(INGRESSES, &other).await.unwrap();
    s.api
        .create(INGRESSES, &ingress("ours", "/ours", None))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (first, mut first_leads) = replica(&s.server, dir.path(), "first", "198.18.0.10").await;
    tokio::time::timeout(Duration::from_secs(5), first_leads.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
    let (_second, second_leads) = replica(&s.server, dir.path(), "second", "198.18.0.11").await;

    let deadline = Instant::now() + Duration::from_secs(5);
    while published(&s.api, "ours").await != json!([{"ip": "198.18.0.10"}]) {
        assert!(Instant::now() < deadline, "the leader did not write status");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The follower neither leads nor writes, and the other class is never touched.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!*second_leads.borrow());
    assert_eq!(
        published(&s.api, "ours").await,
        json!([{"ip": "198.18.0.10"}])
    );
    assert_eq!(published(&s.api, "other").await, Value::Null);

    // The leader stops: the follower takes over within the lease duration (plus its retry period).
    let stopped = Instant::now();
    drop(first);
    while published(&s.api, "ours").await != json!([{"ip": "198.18.0.11"}]) {
        assert!(stopped.elapsed() < Duration::from_secs(5), "no takeover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = stopped.elapsed();
    println!("takeover after {took:?}");
    assert!(
        took < Duration::from_millis(2000 + 500 + 500),
        "takeover took {took:?}"
    );
    assert!(*second_leads.borrow());
    assert_eq!(published(&s.api, "other").await, Value::Null);
}

#[tokio::test]
async fn watch_namespaces_limit_what_is_seen() {
    let server = FakeApiServer::start("127.0.0.1:0".parse().unwrap(), Config::default())
        .await
        .unwrap();
    let api = Client::new(server.url());
    for ns in ["team-a", "team-b", "team-c"] {
        let answer = api
            .create(
                &format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"),
                &ingress(&format!("in-{ns}"), &format!("/{ns}"), None),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 201);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig(&server.url(), NS)).unwrap();
    let client = rauta_k8s::client(Some(&path)).await.unwrap();
    let mut config = WatchConfig::new("rauta");
    config.namespaces = vec!["team-a".into(), "team-c".into()];
    let mut watching = rauta_k8s::start(client, config);
    until(&mut watching, "the two watched namespaces", |snap| {
        paths(snap) == ["/team-a", "/team-c"]
    })
    .await;
    // A change in an unwatched namespace is never seen; one in a watched namespace is.
    api.delete("/apis/networking.k8s.io/v1/namespaces/team-b/ingresses/in-team-b")
        .await
        .unwrap();
    api.delete("/apis/networking.k8s.io/v1/namespaces/team-c/ingresses/in-team-c")
        .await
        .unwrap();
    until(&mut watching, "the deletion in team-c", |snap| {
        paths(snap) == ["/team-a"]
    })
    .await;
    let requests = server.store().requests();
    assert!(
        requests
            .iter()
            .filter(|r| r.resource == "ingresses")
            .all(|r| r.namespace.is_some()),
        "a cluster-wide Ingress request despite --watch-namespace: {requests:?}"
    );
}
