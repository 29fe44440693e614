//! Kubernetes mode: a TLS Secret rotated in the API (same name, new certificate) is served from the next
//! handshake on, checked with `openssl s_client` against the real binary and the fake API server.

mod common;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::process::Command;

use base64::Engine;
use common::*;
use rauta_fake_apiserver::{kubeconfig, Client, Config, FakeApiServer};
use serde_json::{json, Value};

const HOST: &str = "rotate.k8s.test";
const SECRET: &str = "/api/v1/namespaces/default/secrets";

/// A self-signed certificate for [`HOST`] whose subject CN is `cn`: (certificate PEM, key PEM).
fn certificate(cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![HOST.to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn secret(cn: &str) -> Value {
    let (crt, key) = certificate(cn);
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rotating"},
        "type": "kubernetes.io/tls", "data": {"tls.crt": b64(&crt), "tls.key": b64(&key)}})
}

/// The subject of the certificate served for SNI [`HOST`].
fn served_subject(addr: SocketAddr) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            HOST,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("subject="))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_in_the_api_is_served_at_the_next_handshake() {
    let server = FakeApiServer::start("127.0.0.1:0".parse().unwrap(), Config::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    std::fs::write(&config, kubeconfig(&server.url(), "default")).unwrap();
    let api = Client::new(server.url());
    let create = |path: &'static str, object: Value| {
        let api = &api;
        async move {
            let answer = api.create(path, &object).await.unwrap();
            assert_eq!(answer.status, 201, "{:?}", answer.body);
        }
    };
    create(
        "/apis/networking.k8s.io/v1/ingressclasses",
        json!({"metadata": {"name": "rauta"}, "spec": {"controller": "rauta.io/ingress-controller"}}),
    )
    .await;
    create(SECRET, secret("first rotation")).await;
    create(
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
        json!({"metadata": {"name": "tls"}, "spec": {"ingressClassName": "rauta",
            "tls": [{"hosts": [HOST], "secretName": "rotating"}],
            "rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
    )
    .await;
    let rauta = tokio::task::spawn_blocking(move || {
        Rauta::start_from(
            &[OsStr::new("--kubeconfig"), config.as_os_str()],
            &["--kernel-tiers", "off"],
        )
    })
    .await
    .unwrap();
    assert_eq!(served_subject(rauta.https), "CN = first rotation");

    // Rotate: the same Secret, replaced with a new certificate and key (as cert-manager does).
    let answer = api
        .put(&format!("{SECRET}/rotating"), &secret("second rotation"))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    eventually("the rotated certificate to be served", || async {
        served_subject(rauta.https) == "CN = second rotation"
    })
    .await;
}
