//! WebSocket through the real binary with real peers: a Python `websockets` client and echo server. A
//! secure WebSocket (wss, terminated by RAUTA's TLS listener) stays open across 20 configuration reloads and
//! a certificate rotation, its messages echoed after each.
//!
//! Needs python3 with `websockets` (`cargo xtask setup` installs it); without it the tests fail when
//! CI=true and are skipped with a message otherwise.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};

use common::*;

const SERVER_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/websocket/server.py");
const CLIENT_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/websocket/client.py");

/// Whether python3 with `websockets` is there; `false` (after saying so) means skip, unless CI=true.
fn have_websockets() -> bool {
    require_python_module("websockets.asyncio.client", "python3 with websockets")
}

/// A Python helper talking line by line over stdin/stdout; killed on drop.
struct Py {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Py {
    fn spawn(args: &[&str]) -> Py {
        let mut child = Command::new("python3")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Py {
            child,
            stdin,
            lines,
        }
    }

    /// The next stdout line (panics after [`PATIENCE`] or at EOF).
    fn line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("a line from the Python helper")
    }

    /// Send `message` over the WebSocket (client only) and check it comes back.
    fn echo(&mut self, message: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
        assert_eq!(self.line(), format!("echo {message}"));
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The echo server; with `tls` (certificate and key files) it serves wss.
fn echo_server(tls: Option<(&str, &str)>) -> (Py, SocketAddr) {
    let mut args = vec![SERVER_PY];
    if let Some((cert, key)) = tls {
        args.extend([cert, key]);
    }
    let server = Py::spawn(&args);
    let line = server.line();
    let port: u16 = line
        .strip_prefix("port ")
        .unwrap_or_else(|| panic!("server said {line:?}"))
        .parse()
        .unwrap();
    (server, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A WebSocket client to `uri`, the TCP connection going to `addr`, trusting `ca` (a PEM file) for wss.
fn ws_client(uri: &str, addr: SocketAddr, ca: Option<&str>) -> Py {
    let addr = addr.to_string();
    let mut args = vec![CLIENT_PY, uri, &addr];
    args.extend(ca);
    let client = Py::spawn(&args);
    assert_eq!(client.line(), "open");
    client
}

/// A self-signed certificate for `host` with common name `cn`: (certificate PEM, key PEM).
fn self_signed(host: &str, cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// YAML for a `kubernetes.io/tls` Secret `default/NAME`.
fn secret(name: &str, crt: &str, key: &str) -> String {
    let indent = |text: &str| {
        text.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}---\n",
        indent(crt),
        indent(key)
    )
}

/// The leaf's subject as `openssl s_client -servername HOST` prints it (`CN = ...`).
fn served_subject(addr: SocketAddr, host: &str) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            host,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or_else(|| panic!("no subject in s_client output:\n{text}"))
        .trim()
        .to_owned()
}

/// Ingress `ws` routing host `ws.example` to Service `ws`, with TLS from Secret `ws-cert`.
fn ws_ingress() -> String {
    "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ws\nspec:\n  ingressClassName: rauta\n  tls:\n    - hosts: [\"ws.example\"]\n      secretName: ws-cert\n  rules:\n    - host: \"ws.example\"\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n              service:\n                name: ws\n                port:\n                  number: 80\n---\n".into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_session_survives_20_reloads_and_a_certificate_rotation() {
    if !have_websockets() {
        return;
    }
    let (_server, backend_addr) = echo_server(None);
    let (web, _web) = backend("web").await;
    let dir = ManifestDir::new();
    let (cert, key) = self_signed("ws.example", "ws.example first");
    let ca = dir.file("..first.pem");
    std::fs::write(&ca, &cert).unwrap();
    let base = |cert: &str, key: &str| {
        ingress_class()
            + &service("ws", &[backend_addr])
            + &service("web", &[web])
            + &secret("ws-cert", cert, key)
            + &ws_ingress()
    };
    dir.write("base.yaml", &base(&cert, &key));
    let rauta = Rauta::start(dir.path(), &[]);

    let uri = format!("wss://ws.example:{}/chat", rauta.https.port());
    let mut client = ws_client(&uri, rauta.https, ca.to_str());
    client.echo("before any reload");

    // Each reload moves route `/reload-N` of another host: the new table is in force (the old path is gone)
    // before the open session is used again.
    for n in 1..=20 {
        let path = format!("/reload-{n}");
        dir.write(
            "moving.yaml",
            &ingress(
                "moving",
                &[(
                    Some("moving.example"),
                    &[common::path(&path, "Exact", "web")],
                )],
                None,
            ),
        );
        eventually(&format!("reload {n} in force"), || async {
            get(rauta.http, "moving.example", &path)
                .await
                .is_ok_and(|a| a.status == 200)
        })
        .await;
        if n > 1 {
            let old = format!("/reload-{}", n - 1);
            let answer = get(rauta.http, "moving.example", &old).await.unwrap();
            assert_eq!(answer.status, 404, "{old} still routed after reload {n}");
        }
        client.echo(&format!("after reload {n}"));
    }
    assert!(
        rauta
            .metric("rauta_config_reloads_total{result=\"ok\"}")
            .await
            .unwrap()
            >= 20.0
    );

    // A certificate rotation (same host, new key and certificate): new handshakes get the new certificate,
    // the session opened under the old one keeps going.
    let (cert2, key2) = self_signed("ws.example", "ws.example rotated");
    let ca2 = dir.file("..rotated.pem");
    std::fs::write(&ca2, &cert2).unwrap();
    dir.write("base.yaml", &base(&cert2, &key2));
    eventually("the rotated certificate is served", || async {
        served_subject(rauta.https, "ws.example") == "CN = ws.example rotated"
    })
    .await;
    client.echo("after the rotation");
    let mut fresh = ws_client(&uri, rauta.https, ca2.to_str());
    fresh.echo("a new session under the new certificate");
    client.echo("the old session still echoes");
}

/// [`service`] whose port declares `appProtocol: kubernetes.io/wss` (the backend speaks TLS).
fn wss_service(name: &str, endpoints: &[SocketAddr]) -> String {
    service(name, endpoints).replacen(
        "      port: 80\n",
        "      port: 80\n      appProtocol: kubernetes.io/wss\n",
        1,
    )
}

/// [`ws_ingress`] without the HTTP to HTTPS redirect (so `ws://` to the HTTP port reaches the backend
/// too), plus a host-less rule to Service `ws` (requests by address, whose Host is no DNS name).
fn ws_ingress_both_schemes() -> String {
    ws_ingress().replacen(
        "  name: ws\n",
        "  name: ws\n  annotations:\n    rauta.io/ssl-redirect: \"false\"\n",
        1,
    ) + &ingress(
        "by-address",
        &[(None, &[common::path("/", "Prefix", "ws")])],
        None,
    )
}

/// RAUTA with manifests in `dir`: host `ws.example` (its own certificate, also without the HTTPS redirect)
/// and any host by address routed to `backend` behind a `kubernetes.io/wss` port. Returns RAUTA and the
/// file a client verifying `ws.example` trusts.
fn start_in_front_of_wss(dir: &ManifestDir, backend: SocketAddr) -> (Rauta, std::path::PathBuf) {
    let (cert, key) = self_signed("ws.example", "ws.example");
    let ca = dir.file("..front.pem");
    std::fs::write(&ca, &cert).unwrap();
    dir.write(
        "all.yaml",
        &(ingress_class()
            + &wss_service("ws", &[backend])
            + &secret("ws-cert", &cert, &key)
            + &ws_ingress_both_schemes()),
    );
    (Rauta::start(dir.path(), &[]), ca)
}

/// The next line of `server`, which must be the SNI of a handshake (`sni NAME` or `sni None`).
fn sni_line(server: &Py) -> String {
    let line = server.line();
    assert!(line.starts_with("sni "), "server said {line:?}");
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_backend_is_spoken_to_over_tls_with_the_host_as_sni() {
    if !have_websockets() {
        return;
    }
    let dir = ManifestDir::new();
    // The backend's certificate is self-signed and for another name: RAUTA does not verify it.
    let (backend_cert, backend_key) = self_signed("backend.internal", "backend");
    let cert_file = dir.file("..backend.crt");
    let key_file = dir.file("..backend.key");
    std::fs::write(&cert_file, &backend_cert).unwrap();
    std::fs::write(&key_file, &backend_key).unwrap();
    let (server, backend_addr) = echo_server(Some((
        cert_file.to_str().unwrap(),
        key_file.to_str().unwrap(),
    )));
    let (rauta, ca) = start_in_front_of_wss(&dir, backend_addr);

    // ws:// to the HTTP listener: TLS only on the backend leg.
    let uri = format!("ws://ws.example:{}/chat", rauta.http.port());
    let mut plain = ws_client(&uri, rauta.http, None);
    assert_eq!(sni_line(&server), "sni ws.example");
    plain.echo("over ws to RAUTA, wss to the backend");

    // wss:// to the HTTPS listener: TLS on both legs.
    let uri = format!("wss://ws.example:{}/chat", rauta.https.port());
    let mut secure = ws_client(&uri, rauta.https, ca.to_str());
    assert_eq!(sni_line(&server), "sni ws.example");
    secure.echo("over wss on both legs");
    plain.echo("the first session still echoes");

    // A plain (not upgrade) request goes over TLS too: the backend answers it 426 itself.
    let answer = get(rauta.http, "ws.example", "/chat").await.unwrap();
    assert_eq!(answer.status, 426, "{:?}", answer.body);
    assert_eq!(sni_line(&server), "sni ws.example");

    // A Host that is an address: no SNI at all.
    let by_address = format!("127.0.0.1:{}", rauta.http.port());
    let answer = get(rauta.http, &by_address, "/chat").await.unwrap();
    assert_eq!(answer.status, 426, "{:?}", answer.body);
    assert_eq!(sni_line(&server), "sni None");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_backend_that_does_not_speak_tls_answers_502_and_is_logged() {
    if !have_websockets() {
        return;
    }
    // A WebSocket server without TLS behind a port that says it has TLS.
    let (_server, backend_addr) = echo_server(None);
    let dir = ManifestDir::new();
    let (rauta, _ca) = start_in_front_of_wss(&dir, backend_addr);

    let answer = get(rauta.http, "ws.example", "/chat").await.unwrap();
    assert_eq!(answer.status, 502);
    assert_eq!(&answer.body[..], b"502 bad gateway\n");
    let line = rauta.wait_for_log("TLS handshake with the backend failed");
    assert!(line.contains(&backend_addr.to_string()), "{line}");

    // The WebSocket client is refused with the same status.
    let uri = format!("ws://ws.example:{}/chat", rauta.http.port());
    let addr = rauta.http.to_string();
    let client = Py::spawn(&[CLIENT_PY, &uri, &addr]);
    let said = client.line();
    assert!(
        said.starts_with("error") && said.contains("502"),
        "client said {said:?}"
    );
}
