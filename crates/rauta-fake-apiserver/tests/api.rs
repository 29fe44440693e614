//! The fake through its HTTP API: versions, watches from a version, 410 after compaction, conflicts,
//! the status subresource, validation and restarts.

use std::time::Duration;

use http_body_util::BodyExt;
use rauta_fake_apiserver::{Client, Config, FakeApiServer};
use serde_json::{json, Value};

const INGRESSES: &str = "/apis/networking.k8s.io/v1/namespaces/default/ingresses";

fn ingress(name: &str, path: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
           "spec": {"rules": [{"http": {"paths": [{"path": path, "pathType": "Prefix",
               "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
}

async fn start(history: usize) -> (FakeApiServer, Client) {
    let config = Config {
        history,
        bookmark_interval: Duration::from_millis(100),
    };
    let server = FakeApiServer::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let client = Client::new(server.url());
    (server, client)
}

/// Read watch lines from `path` until `n` lines arrived (bounded by a timeout).
async fn watch_lines(server: &FakeApiServer, path: &str, n: usize) -> Vec<Value> {
    let stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header("host", "fake")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let mut body = sender.send_request(request).await.unwrap().into_body();
    let mut text = String::new();
    let mut lines = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while lines.len() < n {
            let Some(frame) = body.frame().await else {
                break;
            };
            if let Ok(data) = frame.unwrap().into_data() {
                text.push_str(std::str::from_utf8(&data).unwrap());
            }
            while let Some((line, rest)) = text.split_once('\n') {
                lines.push(serde_json::from_str(line).unwrap());
                text = rest.to_string();
            }
        }
    })
    .await
    .expect("watch lines did not arrive");
    lines
}

#[tokio::test]
async fn list_watch_and_expiry() {
    let (server, client) = start(3).await;
    let created = client.create(INGRESSES, &ingress("a", "/a")).await.unwrap();
    assert_eq!(created.status, 201, "{:?}", created.body);
    let list = client.get(INGRESSES).await.unwrap();
    let rv: u64 = list.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);

    client.create(INGRESSES, &ingress("b", "/b")).await.unwrap();
    client.delete(&format!("{INGRESSES}/a")).await.unwrap();
    let events = watch_lines(
        &server,
        &format!("{INGRESSES}?watch=1&resourceVersion={rv}"),
        2,
    )
    .await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "b");
    assert_eq!(events[1]["type"], "DELETED");

    // Cluster-wide watch with bookmarks: a BOOKMARK arrives while nothing changes.
    let now = server.store().resource_version();
    let events = watch_lines(
        &server,
        &format!("/apis/networking.k8s.io/v1/ingresses?watch=true&resourceVersion={now}&allowWatchBookmarks=true"),
        1,
    )
    .await;
    assert_eq!(events[0]["type"], "BOOKMARK");
    assert_eq!(
        events[0]["object"]["metadata"]["resourceVersion"],
        now.to_string()
    );

    // History of 3: the first version is gone.
    for name in ["c", "d", "e"] {
        client.create(INGRESSES, &ingress(name, "/")).await.unwrap();
    }
    let events = watch_lines(
        &server,
        &format!("{INGRESSES}?watch=1&resourceVersion={rv}"),
        1,
    )
    .await;
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[tokio::test]
async fn conflicts_status_validation_and_restart() {
    let (mut server, client) = start(100).await;
    let lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
    let lease = json!({"metadata": {"name": "rauta"}, "spec": {"holderIdentity": "a"}});
    let first = client.create(lease_path, &lease).await.unwrap();
    assert_eq!(first.status, 201);
    assert_eq!(client.create(lease_path, &lease).await.unwrap().status, 409);
    let mut stale = first.body.clone();
    stale["spec"]["holderIdentity"] = json!("b");
    assert_eq!(
        client
            .put(&format!("{lease_path}/rauta"), &stale)
            .await
            .unwrap()
            .status,
        200
    );
    stale["spec"]["holderIdentity"] = json!("c");
    let conflict = client
        .put(&format!("{lease_path}/rauta"), &stale)
        .await
        .unwrap();
    assert_eq!(
        (conflict.status, conflict.body["reason"].as_str()),
        (409, Some("Conflict"))
    );

    // Status only through the subresource.
    client.create(INGRESSES, &ingress("s", "/")).await.unwrap();
    let lb = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.1"}]}}});
    client
        .merge_patch(&format!("{INGRESSES}/s"), &lb)
        .await
        .unwrap();
    assert_eq!(
        client.get(&format!("{INGRESSES}/s")).await.unwrap().body["status"],
        json!({})
    );
    let patched = client
        .merge_patch(&format!("{INGRESSES}/s/status"), &lb)
        .await
        .unwrap();
    assert_eq!(patched.body["status"], lb["status"]);
    // A no-op write keeps the version.
    let again = client
        .merge_patch(&format!("{INGRESSES}/s/status"), &lb)
        .await
        .unwrap();
    assert_eq!(
        again.body["metadata"]["resourceVersion"],
        patched.body["metadata"]["resourceVersion"]
    );

    // Server-side apply creates, then updates.
    let yaml =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";
    let services = "/api/v1/namespaces/default/services";
    assert_eq!(
        client
            .apply(&format!("{services}/web"), yaml, "test")
            .await
            .unwrap()
            .status,
        201
    );
    assert_eq!(
        client
            .apply(&format!("{services}/web"), yaml, "test")
            .await
            .unwrap()
            .status,
        200
    );

    // Loopback endpoints are rejected like a real API server does.
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"]}], "ports": [{"port": 8080}]});
    let rejected = client
        .create(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            &slice,
        )
        .await
        .unwrap();
    assert_eq!(rejected.status, 422, "{:?}", rejected.body);
    assert!(rejected.body["message"]
        .as_str()
        .unwrap()
        .contains("loopback"));

    // A restart keeps the state and the version counter.
    let rv = server.store().resource_version();
    server.restart().await.unwrap();
    let list = Client::new(server.url()).get(INGRESSES).await.unwrap();
    assert_eq!(list.body["items"][0]["metadata"]["name"], "s");
    assert_eq!(list.body["metadata"]["resourceVersion"], rv.to_string());
}
