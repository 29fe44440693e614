//! The RBAC rules in `deploy/rbac.yaml` cover every API call the real binary makes, and no more.
//!
//! The binary runs in Kubernetes mode with everything that calls the API switched on (watches, leader
//! election, `--publish-service`, Ingress status, Events) against the fake API server, which logs every
//! resource request in RBAC terms. Then: every request must be allowed by the ClusterRole (any
//! namespace) or the leader-election Role (its namespace only), and every verb of every rule must have
//! been used.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::time::Duration;

use common::*;
use rauta_fake_apiserver::{kubeconfig, ApiRequest, Client, Config, FakeApiServer};
use serde_json::{json, Value};

const NAMESPACE: &str = "rauta-system";

/// One allowed (group, resource, verb), optionally limited to a namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    group: String,
    resource: String,
    verb: String,
    namespace: Option<String>,
}

fn grants() -> Vec<Grant> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/rbac.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut grants = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let object = Value::deserialize(document).unwrap();
        let namespace = match object["kind"].as_str() {
            Some("ClusterRole") => None,
            Some("Role") => Some(
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
            _ => continue,
        };
        for rule in object["rules"].as_array().unwrap() {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        assert!(
                            group != "*" && resource != "*" && verb != "*",
                            "wildcards are not least privilege: {rule}"
                        );
                        grants.push(Grant {
                            group: group.clone(),
                            resource: resource.clone(),
                            verb,
                            namespace: namespace.clone(),
                        });
                    }
                }
            }
        }
    }
    grants
}

fn allows(grant: &Grant, request: &ApiRequest) -> bool {
    let resource = if request.subresource.is_empty() {
        request.resource.to_string()
    } else {
        format!("{}/{}", request.resource, request.subresource)
    };
    grant.group == request.group
        && grant.resource == resource
        && grant.verb == request.verb
        && grant
            .namespace
            .as_ref()
            .is_none_or(|ns| request.namespace.as_ref() == Some(ns))
}

use serde::Deserialize;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rbac_covers_every_api_call_and_no_more() {
    let grants = grants();
    let server = FakeApiServer::start("127.0.0.1:0".parse().unwrap(), Config::default())
        .await
        .unwrap();
    let api = Client::new(server.url());
    let create = |path: &'static str, object: Value| {
        let api = api.clone();
        async move {
            let answer = api.create(path, &object).await.unwrap();
            assert_eq!(answer.status, 201, "{:?}", answer.body);
        }
    };
    create(
        "/apis/networking.k8s.io/v1/ingressclasses",
        json!({"metadata": {"name": "rauta"},
        "spec": {"controller": "rauta.io/ingress-controller"}}),
    )
    .await;
    // The --publish-service, with a load-balancer address in its status.
    create(
        "/api/v1/namespaces/rauta-system/services",
        json!({"metadata": {"name": "rauta"},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]}}),
    )
    .await;
    let lb = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.20"}]}}});
    api.merge_patch("/api/v1/namespaces/rauta-system/services/rauta/status", &lb)
        .await
        .unwrap();
    // A TLS Ingress whose Service is missing: a route, a Secret to keep, and a problem to report.
    create(
        "/api/v1/namespaces/default/secrets",
        json!({"metadata": {"name": "cert"},
        "type": "kubernetes.io/tls", "stringData": {"tls.crt": "C", "tls.key": "K"}}),
    )
    .await;
    create(
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
        json!({
        "metadata": {"name": "app"},
        "spec": {"ingressClassName": "rauta", "tls": [{"hosts": ["a.test"], "secretName": "cert"}],
            "rules": [{"host": "a.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "missing", "port": {"number": 80}}}}]}}]}}),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig(&server.url(), "default")).unwrap();
    let before = server.store().requests().len();
    let rauta = tokio::task::spawn_blocking(move || {
        Rauta::start_from(
            &[OsStr::new("--kubeconfig"), path.as_os_str()],
            &[
                "--kernel-tiers",
                "off",
                "--publish-service",
                "rauta-system/rauta",
                "--election-namespace",
                NAMESPACE,
                "--election-lease-duration",
                "1s",
            ],
        )
    })
    .await
    .unwrap();
    rauta.wait_for_log("became the leader");
    rauta.wait_for_log("wrote Ingress status");
    rauta.wait_for_log("recorded Events");
    // A few renewals of the Lease (every 250 ms with a 1 s lease).
    tokio::time::sleep(Duration::from_millis(800)).await;
    drop(rauta);
    let requests: BTreeSet<ApiRequest> = server.store().requests()[before..]
        .iter()
        .cloned()
        .collect();

    // Everything the binary did was allowed ...
    let denied: Vec<&ApiRequest> = requests
        .iter()
        .filter(|r| !grants.iter().any(|g| allows(g, r)))
        .collect();
    assert!(
        denied.is_empty(),
        "not covered by deploy/rbac.yaml: {denied:#?}"
    );
    // ... and every grant was needed.
    let unused: Vec<&Grant> = grants
        .iter()
        .filter(|g| !requests.iter().any(|r| allows(g, r)))
        .collect();
    assert!(unused.is_empty(), "granted but never used: {unused:#?}");

    // And the calls did what they are for.
    let ingress = api
        .get("/apis/networking.k8s.io/v1/namespaces/default/ingresses/app")
        .await
        .unwrap();
    assert_eq!(
        ingress.body["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "198.18.0.20"}])
    );
}
