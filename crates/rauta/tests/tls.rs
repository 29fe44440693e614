//! HTTPS through the real binary with real clients (curl, openssl s_client, a rustls client): certificate
//! choice by SNI, rotation and broken Secrets on reload, protocol versions and ALPN, the HTTP → HTTPS
//! redirect and the access log.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

/// A test PKI: a root CA and an intermediate; leaves are signed by the intermediate, so a client trusting
/// only the root verifies a leaf only if the server sends the whole chain.
struct Pki {
    root_pem: String,
    intermediate: rcgen::Certificate,
    intermediate_key: rcgen::KeyPair,
}

struct Leaf {
    chain: String,
    key: String,
}

impl Pki {
    fn new(intermediate_cn: &str) -> Pki {
        let root_key = rcgen::KeyPair::generate().unwrap();
        let mut root = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        root.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        root.distinguished_name
            .push(rcgen::DnType::CommonName, "rauta test root");
        let root = root.self_signed(&root_key).unwrap();
        let intermediate_key = rcgen::KeyPair::generate().unwrap();
        let mut mid = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        mid.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        mid.distinguished_name
            .push(rcgen::DnType::CommonName, intermediate_cn);
        let intermediate = mid.signed_by(&intermediate_key, &root, &root_key).unwrap();
        Pki {
            root_pem: root.pem(),
            intermediate,
            intermediate_key,
        }
    }

    /// A leaf for `hosts` (CN = the first), with an RSA-2048 or ECDSA P-256 key.
    fn leaf(&self, hosts: &[&str], rsa: bool) -> Leaf {
        let key = if rsa {
            rcgen::KeyPair::from_pem_and_sign_algo(&rsa_key_pem(), &rcgen::PKCS_RSA_SHA256).unwrap()
        } else {
            rcgen::KeyPair::generate().unwrap()
        };
        let mut params =
            rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, hosts[0]);
        // Like a real leaf (what testssl.sh checks): 90 days, and a revocation pointer (never fetched:
        // `.invalid` does not resolve, and testssl.sh does not phone out unless told to).
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(90);
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec!["http://crl.rauta.invalid/intermediate.crl".into()],
        }];
        let cert = params
            .signed_by(&key, &self.intermediate, &self.intermediate_key)
            .unwrap();
        Leaf {
            chain: cert.pem() + &self.intermediate.pem(),
            key: key.serialize_pem(),
        }
    }

    fn write_root(&self, dir: &ManifestDir) -> PathBuf {
        let path = dir.dir.path().join("..root.pem");
        std::fs::write(&path, &self.root_pem).unwrap();
        path
    }
}

/// ring cannot generate RSA keys: openssl does (PKCS#8).
fn rsa_key_pem() -> String {
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl is needed for RSA test keys");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>()
}

/// YAML for a `kubernetes.io/tls` Secret `default/NAME`.
fn secret(name: &str, crt: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}---\n",
        indent(crt),
        indent(key)
    )
}

/// YAML for Ingress `NAME` routing each host's `/` to `web`, with `spec.tls` entries (host, Secret) and an
/// optional `rauta.io/ssl-redirect` value.
fn tls_ingress(name: &str, tls: &[(&str, &str)], plain: &[&str], redirect: Option<&str>) -> String {
    let mut yaml =
        format!("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n");
    if let Some(value) = redirect {
        yaml += &format!("  annotations:\n    rauta.io/ssl-redirect: \"{value}\"\n");
    }
    yaml += "spec:\n  ingressClassName: rauta\n  tls:\n";
    for (host, secret) in tls {
        yaml += &format!("    - hosts: [\"{host}\"]\n      secretName: {secret}\n");
    }
    yaml += "  rules:\n";
    for host in tls.iter().map(|(h, _)| *h).chain(plain.iter().copied()) {
        yaml += &format!(
            "    - host: \"{host}\"\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n              service:\n                name: web\n                port:\n                  number: 80\n"
        );
    }
    yaml + "---\n"
}

/// `openssl s_client` to the HTTPS listener; `servername` None sends no SNI.
fn s_client(addr: SocketAddr, servername: Option<&str>, extra: &[&str]) -> Output {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &addr.to_string()])
        .args(extra)
        .stdin(Stdio::null());
    match servername {
        Some(name) => command.args(["-servername", name]),
        None => command.arg("-noservername"),
    };
    command.output().unwrap()
}

/// The leaf's `subject=` and `issuer=` lines as s_client prints them (`CN = ...`).
fn subject_and_issuer(addr: SocketAddr, servername: Option<&str>) -> (String, String) {
    let out = s_client(addr, servername, &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in s_client output:\n{text}"))
            .trim()
            .to_owned()
    };
    (field("subject="), field("issuer="))
}

/// `curl --http1.1` over HTTPS to `host` (resolved to the listener), trusting only `root`.
fn curl_https(rauta: &Rauta, host: &str, path: &str, root: &Path) -> Output {
    let port = rauta.https.port();
    Command::new("curl")
        .args([
            "-sS",
            "--http1.1",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(root)
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .unwrap()
}

fn code(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two Ingress hosts with RSA and ECDSA leaves plus a wildcard; `web` is the echo backend.
async fn start_sni_setup(
    pki: &Pki,
    extra: &[&str],
) -> (Rauta, ManifestDir, tokio::task::JoinHandle<()>) {
    let (web, handle) = backend("web").await;
    let dir = ManifestDir::new();
    let rsa = pki.leaf(&["rsa.example"], true);
    let ec = pki.leaf(&["ec.example"], false);
    let wild = pki.leaf(&["*.wild.example"], false);
    dir.write(
        "base.yaml",
        &(ingress_class()
            + &service("web", &[web])
            + &secret("rsa-cert", &rsa.chain, &rsa.key)
            + &secret("ec-cert", &ec.chain, &ec.key)
            + &secret("wild-cert", &wild.chain, &wild.key)),
    );
    dir.write(
        "ingress.yaml",
        &tls_ingress(
            "sites",
            &[
                ("rsa.example", "rsa-cert"),
                ("ec.example", "ec-cert"),
                ("*.wild.example", "wild-cert"),
            ],
            &["plain.example"],
            None,
        ),
    );
    let rauta = Rauta::start(dir.path(), extra);
    (rauta, dir, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_chooses_rsa_ecdsa_wildcard_and_default_certificates() {
    let pki = Pki::new("rauta test intermediate");
    let (rauta, dir, _web) = start_sni_setup(&pki, &[]).await;
    let root = pki.write_root(&dir);

    // curl verifies against the root only: it succeeds only if the intermediate is served too.
    for host in ["rsa.example", "ec.example", "a.wild.example"] {
        let out = curl_https(&rauta, host, "/x", &root);
        assert_eq!(
            code(&out),
            "200",
            "{host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (subject, issuer) = subject_and_issuer(rauta.https, Some("rsa.example"));
    assert_eq!(subject, "CN = rsa.example");
    assert_eq!(issuer, "CN = rauta test intermediate");
    assert_eq!(
        subject_and_issuer(rauta.https, Some("EC.example")).0,
        "CN = ec.example"
    );
    let out = s_client(rauta.https, Some("rsa.example"), &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Server public key is 2048 bit"),
        "RSA leaf expected"
    );
    // The wildcard covers one label only; unmatched and absent SNI get the default certificate.
    for name in [Some("a.b.wild.example"), Some("unknown.example"), None] {
        let (subject, _) = subject_and_issuer(rauta.https, name);
        assert_eq!(subject, "CN = RAUTA default certificate", "{name:?}");
    }
    // SNI chooses the certificate, Host the route: a TLS host without a route of its own is a 404.
    let out = curl_https(&rauta, "unknown.example", "/", &root);
    assert_ne!(code(&out), "200");
    rauta.wait_for_log("no --default-certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_1_2_and_1_3_and_alpn_offers_h2_then_http11() {
    let pki = Pki::new("rauta test intermediate");
    let (rauta, _dir, _web) = start_sni_setup(&pki, &[]).await;
    for (version, ok) in [
        ("-tls1_1", false),
        ("-tls1", false),
        ("-tls1_2", true),
        ("-tls1_3", true),
    ] {
        // SECLEVEL=0 lets OpenSSL 3 offer the old versions at all, so the refusal is the server's.
        let out = s_client(
            rauta.https,
            Some("ec.example"),
            &[version, "-cipher", "DEFAULT@SECLEVEL=0"],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let negotiated = out.status.success() && !text.contains("Cipher is (NONE)");
        assert_eq!(
            negotiated,
            ok,
            "{version}:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let alpn = |offer: &str| {
        let out = s_client(rauta.https, Some("ec.example"), &["-alpn", offer]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("ALPN protocol:") || l.starts_with("No ALPN"))
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(alpn("h2,http/1.1"), "ALPN protocol: h2");
    assert_eq!(alpn("http/1.1"), "ALPN protocol: http/1.1");
    assert_eq!(alpn("spdy/3"), "No ALPN negotiated");

    // curl's default over HTTPS: ALPN h2, and the request is then served over HTTP/2.
    let port = rauta.https.port();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "-v",
            "-k",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_code} %{http_version}"])
        .arg("--resolve")
        .arg(format!("ec.example:{port}:127.0.0.1"))
        .arg(format!("https://ec.example:{port}/h2"))
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(verbose.contains("ALPN: server accepted h2"), "{verbose}");
    assert_eq!(code(&out), "200 2", "{verbose}");
}

/// A rustls client connection that stays open across reloads.
struct TlsClient {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
}

impl TlsClient {
    async fn connect(addr: SocketAddr, host: &str, root_pem: &str) -> TlsClient {
        let mut roots = rustls::RootCertStore::empty();
        let root = rustls::pki_types::pem::PemObject::from_pem_slice(root_pem.as_bytes()).unwrap();
        roots.add(root).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
        TlsClient {
            stream: connector.connect(name, tcp).await.unwrap(),
        }
    }

    /// GET `path` with keep-alive; returns the status line.
    async fn get(&mut self, host: &str, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        self.stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .expect("echo answers carry Content-Length");
                if buf.len() >= end + 4 + length {
                    return text.lines().next().unwrap_or("").to_owned();
                }
            }
        }
    }
}

/// A connection RAUTA closes after a response (`Connection: close`) ends with a TLS `close_notify`, as nginx's
/// do: without it a client cannot tell the end of the connection from a truncation, and strict clients
/// (OpenSSL 3, rustls) report an unexpected EOF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_after_a_response_ends_with_close_notify() {
    let pki = Pki::new("rauta test intermediate");
    let (rauta, _dir, _web) = start_sni_setup(&pki, &[]).await;
    let mut client = TlsClient::connect(rauta.https, "ec.example", &pki.root_pem).await;
    client
        .stream
        .write_all(b"GET /bye HTTP/1.1\r\nHost: ec.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // rustls reports a TCP close without `close_notify` as `UnexpectedEof`; with it, the read ends cleanly.
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.stream.read_to_end(&mut response),
    )
    .await
    .expect("RAUTA closes the connection after a `Connection: close` response");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    read.unwrap_or_else(|err| panic!("no close_notify before the close: {err}; got {text}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_and_open_connections_survive() {
    let pki = Pki::new("rauta test intermediate");
    let (rauta, dir, _web) = start_sni_setup(&pki, &[]).await;
    let mut open = TlsClient::connect(rauta.https, "ec.example", &pki.root_pem).await;
    assert_eq!(open.get("ec.example", "/before").await, "HTTP/1.1 200 OK");

    // Same host, another PKI: the issuer tells the two certificates apart.
    let rotated = Pki::new("rauta rotated intermediate");
    let leaf = rotated.leaf(&["ec.example"], false);
    let root = rotated.write_root(&dir);
    let old_issuer = subject_and_issuer(rauta.https, Some("ec.example")).1;
    assert_eq!(old_issuer, "CN = rauta test intermediate");
    let base = std::fs::read_to_string(dir.file("base.yaml")).unwrap();
    let start = base
        .find("apiVersion: v1\nkind: Secret\nmetadata:\n  name: ec-cert")
        .unwrap();
    // A document ends at a `---` line (PEM lines end in `-----` too).
    let end = start + base[start..].find("\n---\n").unwrap() + 5;
    let replaced = format!(
        "{}{}{}",
        &base[..start],
        secret("ec-cert", &leaf.chain, &leaf.key),
        &base[end..]
    );
    dir.write("base.yaml", &replaced);

    eventually("the rotated certificate is served", || async {
        subject_and_issuer(rauta.https, Some("ec.example")).1 == "CN = rauta rotated intermediate"
    })
    .await;
    let out = curl_https(&rauta, "ec.example", "/after", &root);
    assert_eq!(
        code(&out),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The connection opened before the rotation keeps its session and keeps being served.
    assert_eq!(
        open.get("ec.example", "/still-open").await,
        "HTTP/1.1 200 OK"
    );
    // Other hosts never changed.
    assert_eq!(
        subject_and_issuer(rauta.https, Some("rsa.example")).1,
        "CN = rauta test intermediate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_secret_moves_only_its_hosts_to_the_default_certificate() {
    let pki = Pki::new("rauta test intermediate");
    let (rauta, dir, _web) = start_sni_setup(&pki, &[]).await;
    let root = pki.write_root(&dir);
    let metric = "rauta_tls_certificate_errors{namespace=\"default\",secret=\"ec-cert\",reason=\"bad_certificate\"}";
    assert_eq!(rauta.metric(metric).await, None);
    assert_eq!(
        rauta.metric("rauta_tls_hosts_on_default_certificate").await,
        Some(0.0)
    );

    let good = std::fs::read_to_string(dir.file("base.yaml")).unwrap();
    let start = good.find("  name: ec-cert").unwrap();
    let crt = start + good[start..].find("tls.crt: |\n").unwrap() + "tls.crt: |\n".len();
    // Still a valid manifest (the reload is applied); the PEM inside is not a certificate.
    let broken = format!("{}    -----BEGIN CERTIFICATE-----\n    bm90IGEgY2VydA==\n    -----END CERTIFICATE-----\n  tls.key: |{}", &good[..crt], {
        let rest = &good[crt..];
        let key = rest.find("  tls.key: |").unwrap() + "  tls.key: |".len();
        &rest[key..]
    });
    dir.write("base.yaml", &broken);
    eventually("the broken secret is reported", || async {
        rauta.metric(metric).await == Some(1.0)
    })
    .await;
    assert_eq!(
        rauta.metric("rauta_tls_hosts_on_default_certificate").await,
        Some(1.0)
    );
    let line = rauta.wait_for_log("TLS secret cannot be used");
    assert!(
        line.contains("default/ec-cert") && line.contains("ec.example"),
        "{line}"
    );
    assert_eq!(
        subject_and_issuer(rauta.https, Some("ec.example")).0,
        "CN = RAUTA default certificate"
    );
    // Everyone else is unaffected.
    assert_eq!(code(&curl_https(&rauta, "rsa.example", "/", &root)), "200");
    assert_eq!(
        code(&curl_https(&rauta, "a.wild.example", "/", &root)),
        "200"
    );

    // Fixing it brings the certificate back and clears the metric.
    dir.write("base.yaml", &good);
    eventually("the fixed secret is served", || async {
        subject_and_issuer(rauta.https, Some("ec.example")).0 == "CN = ec.example"
    })
    .await;
    assert_eq!(rauta.metric(metric).await, None);
    rauta.wait_for_log("TLS secret problem resolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_tls_host_is_redirected_unless_the_ingress_says_no() {
    let pki = Pki::new("rauta test intermediate");
    let (rauta, dir, _web) = start_sni_setup(&pki, &[]).await;
    let leaf = pki.leaf(&["optout.example"], false);
    dir.write(
        "optout.yaml",
        &(secret("optout-cert", &leaf.chain, &leaf.key)
            + &tls_ingress(
                "optout",
                &[("optout.example", "optout-cert")],
                &[],
                Some("false"),
            )),
    );
    let http_addr = rauta.http;
    let http = |host: &'static str, target: &'static str| async move {
        let mut connection = Connection::open(http_addr).await.unwrap();
        connection
            .send(http::Method::GET, host, target, bytes::Bytes::new())
            .await
            .unwrap()
    };
    let answer = http("rsa.example", "/a/b?x=1&y=two").await;
    assert_eq!(answer.status, http::StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        answer.headers["location"],
        format!("https://rsa.example:{}/a/b?x=1&y=two", rauta.https.port()).as_str()
    );
    // A host without TLS is served over HTTP.
    assert_eq!(
        http("plain.example", "/").await.status,
        http::StatusCode::OK
    );
    eventually("the opted-out Ingress is loaded", || async {
        http("optout.example", "/p?q").await.status == http::StatusCode::OK
    })
    .await;
    // And the redirect target really serves it.
    let root = pki.write_root(&dir);
    assert_eq!(
        code(&curl_https(&rauta, "rsa.example", "/a/b?x=1&y=two", &root)),
        "200"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_in_text_and_json() {
    let pki = Pki::new("rauta test intermediate");
    let (rauta, dir, _web) = start_sni_setup(&pki, &["--access-log"]).await;
    let root = pki.write_root(&dir);
    assert_eq!(
        code(&curl_https(&rauta, "ec.example", "/text?a=1", &root)),
        "200"
    );
    eventually("a text access line", || async {
        !rauta.stdout_lines().is_empty()
    })
    .await;
    let line = rauta.stdout_lines().remove(0);
    for field in [
        "client=127.0.0.1:",
        "host=ec.example:",
        "method=GET",
        "path=/text?a=1",
        "status=200",
        "upstream=127.0.0.1:",
        "upstream_latency=0.",
        "latency=0.",
        "tier=3",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    assert!(line.starts_with("time=20"), "{line}");
    drop(rauta);

    let (rauta, _dir, _web2) =
        start_sni_setup(&pki, &["--access-log", "--log-format", "json"]).await;
    let answer = get(rauta.http, "nowhere.example", "/missing")
        .await
        .unwrap();
    assert_eq!(answer.status, http::StatusCode::NOT_FOUND);
    eventually("a JSON access line", || async {
        !rauta.stdout_lines().is_empty()
    })
    .await;
    let line = rauta.stdout_lines().remove(0);
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["host"], "nowhere.example");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/missing");
    assert_eq!(v["status"], 404);
    assert!(v["bytes"].as_u64().is_some(), "{line}");
    assert!(
        v["upstream"].is_null() && v["upstream_latency"].is_null(),
        "{line}"
    );
    assert!(v["latency"].as_f64().is_some() && v["tier"] == 3, "{line}");
    assert!(v["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_certificate_comes_from_a_secret_file() {
    let pki = Pki::new("rauta test intermediate");
    let dir = ManifestDir::new();
    let fallback = pki.leaf(&["fallback.example"], true);
    let file = dir.dir.path().join("..default-cert.yaml");
    std::fs::write(&file, secret("fallback", &fallback.chain, &fallback.key)).unwrap();
    let file_arg = file.to_str().unwrap().to_owned();
    let (rauta, _dir, _web) = start_sni_setup(&pki, &["--default-certificate", &file_arg]).await;
    assert_eq!(
        subject_and_issuer(rauta.https, Some("unknown.example")).0,
        "CN = fallback.example"
    );
    assert_eq!(
        subject_and_issuer(rauta.https, Some("ec.example")).0,
        "CN = ec.example"
    );
    drop(rauta);

    // An explicit certificate that does not load is fatal rather than silently replaced.
    std::fs::write(&file, secret("fallback", "garbage", &fallback.key)).unwrap();
    let manifests = ManifestDir::new();
    manifests.write("c.yaml", &ingress_class());
    let Err((status, logs)) =
        Rauta::try_start(manifests.path(), &["--default-certificate", &file_arg])
    else {
        panic!("started with a broken default certificate");
    };
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    assert!(
        logs.iter()
            .any(|l| l.contains("--default-certificate") && l.contains("tls.crt")),
        "{logs:?}"
    );
}

/// The `--default-certificate` file is followed like Secrets: a new certificate in it is served without a
/// restart (open connections keep theirs), and a broken edit keeps the previous one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_certificate_file_is_followed_without_restart() {
    let pki = Pki::new("rauta test intermediate");
    let dir = ManifestDir::new();
    let first = pki.leaf(&["fallback.example"], false);
    let file = dir.dir.path().join("..default-cert.yaml");
    std::fs::write(&file, secret("fallback", &first.chain, &first.key)).unwrap();
    let file_arg = file.to_str().unwrap().to_owned();
    let (rauta, _dir, _web) = start_sni_setup(&pki, &["--default-certificate", &file_arg]).await;
    assert_eq!(
        subject_and_issuer(rauta.https, Some("unknown.example")).0,
        "CN = fallback.example"
    );
    let root = pki.write_root(&dir);
    let mut open = TlsClient::connect(rauta.https, "ec.example", &pki.root_pem).await;
    assert_eq!(open.get("ec.example", "/before").await, "HTTP/1.1 200 OK");

    // Replaced as editors do (a new file renamed over the old one).
    let second = pki.leaf(&["second-fallback.example"], true);
    let temp = dir.dir.path().join("..default-cert.yaml.tmp");
    std::fs::write(&temp, secret("fallback", &second.chain, &second.key)).unwrap();
    std::fs::rename(&temp, &file).unwrap();
    eventually("the new default certificate is served", || async {
        subject_and_issuer(rauta.https, Some("unknown.example")).0 == "CN = second-fallback.example"
    })
    .await;
    // Ingress hosts keep their own certificates; the open connection keeps being served.
    assert_eq!(
        subject_and_issuer(rauta.https, Some("ec.example")).0,
        "CN = ec.example"
    );
    assert_eq!(open.get("ec.example", "/after").await, "HTTP/1.1 200 OK");
    assert_eq!(code(&curl_https(&rauta, "rsa.example", "/", &root)), "200");

    // A broken edit (written in place) is reported and the previous default certificate stays.
    std::fs::write(&file, secret("fallback", "garbage", &second.key)).unwrap();
    rauta.wait_for_log("the changed --default-certificate cannot be used");
    assert_eq!(
        subject_and_issuer(rauta.https, Some("unknown.example")).0,
        "CN = second-fallback.example"
    );
}

/// Kubernetes mode: certificates come from the API's Secrets, the first snapshot's and later ones alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_mode_serves_secrets_from_the_api_and_follows_them() {
    use rauta_fake_apiserver::{kubeconfig, Client, Config, FakeApiServer};
    use serde_json::json;

    let server = FakeApiServer::start("127.0.0.1:0".parse().unwrap(), Config::default())
        .await
        .unwrap();
    let dir = ManifestDir::new();
    let config = dir.dir.path().join("kubeconfig");
    std::fs::write(&config, kubeconfig(&server.url(), "default")).unwrap();
    let api = Client::new(server.url());
    let create = |path: &'static str, object: serde_json::Value| {
        let api = &api;
        async move {
            let answer = api.create(path, &object).await.unwrap();
            assert_eq!(answer.status, 201, "{:?}", answer.body);
        }
    };
    create(
        "/apis/networking.k8s.io/v1/ingressclasses",
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "rauta"}, "spec": {"controller": "rauta.io/ingress-controller"}}),
    )
    .await;
    let pki = Pki::new("rauta test intermediate");
    let b64 = |pem: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(pem)
    };
    let first = pki.leaf(&["first.k8s.test"], false);
    let secret = |name: &str, leaf: &Leaf| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(&leaf.chain), "tls.key": b64(&leaf.key)}})
    };
    create(
        "/api/v1/namespaces/default/secrets",
        secret("first-cert", &first),
    )
    .await;
    let tls_ingress = |name: &str, host: &str, secret: &str| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"ingressClassName": "rauta",
                "tls": [{"hosts": [host], "secretName": secret}],
                "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    };
    create(
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
        tls_ingress("first", "first.k8s.test", "first-cert"),
    )
    .await;
    create(
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
        tls_ingress("second", "second.k8s.test", "second-cert"),
    )
    .await;

    let rauta = tokio::task::spawn_blocking(move || {
        Rauta::start_from(
            &[std::ffi::OsStr::new("--kubeconfig"), config.as_os_str()],
            &["--kernel-tiers", "off"],
        )
    })
    .await
    .unwrap();
    // The first snapshot's Secret is served; the missing one is reported and its host gets the default.
    assert_eq!(
        subject_and_issuer(rauta.https, Some("first.k8s.test")).0,
        "CN = first.k8s.test"
    );
    assert_eq!(
        subject_and_issuer(rauta.https, Some("second.k8s.test")).0,
        "CN = RAUTA default certificate"
    );
    let missing = "rauta_tls_certificate_errors{namespace=\"default\",secret=\"second-cert\",reason=\"not_found\"}";
    assert_eq!(rauta.metric(missing).await, Some(1.0));

    // A Secret created later is picked up from the next snapshot.
    let second = pki.leaf(&["second.k8s.test"], true);
    create(
        "/api/v1/namespaces/default/secrets",
        secret("second-cert", &second),
    )
    .await;
    eventually("the new Secret is served", || async {
        subject_and_issuer(rauta.https, Some("second.k8s.test")).0 == "CN = second.k8s.test"
    })
    .await;
    assert_eq!(rauta.metric(missing).await, None);
}

/// `rauta check` reports the Secrets `run` could not serve, and fails.
#[test]
fn check_reports_unusable_tls_secrets() {
    let pki = Pki::new("rauta test intermediate");
    let good = pki.leaf(&["good.example"], false);
    let other = pki.leaf(&["other.example"], false);
    let dir = ManifestDir::new();
    dir.write(
        "all.yaml",
        &(ingress_class()
            + &service("web", &["127.0.0.1:9".parse().unwrap()])
            + &secret("good-cert", &good.chain, &good.key)
            + &secret("mismatch-cert", &good.chain, &other.key)
            + &tls_ingress(
                "sites",
                &[
                    ("good.example", "good-cert"),
                    ("bad.example", "mismatch-cert"),
                    ("gone.example", "no-such-cert"),
                ],
                &[],
                None,
            )),
    );
    let path = dir.path().to_str().unwrap().to_owned();
    let (status, stdout, _) = run_to_end(&["check", "--manifests", &path]);
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("error: Secret default/mismatch-cert: tls.key does not belong to the first certificate of tls.crt (TLS hosts bad.example would get the default certificate)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("error: Secret default/no-such-cert: secret not found"),
        "{stdout}"
    );
    assert!(!stdout.contains("good-cert"), "{stdout}");
    let (_, json, _) = run_to_end(&["check", "--output", "json", "--manifests", &path]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["tls"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(v["ok"], false);
}

/// A client sending an IP address as SNI (wrk and other OpenSSL clients send the address they connect to)
/// makes rustls warn once per handshake; 100 such handshakes must not become 100 log lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_address_as_sni_is_not_a_log_line_per_handshake() {
    let pki = Pki::new("rauta test intermediate");
    let (rauta, _dir, _web) = start_sni_setup(&pki, &[]).await;
    let illegal = |rauta: &Rauta| {
        rauta
            .logs()
            .iter()
            .filter(|l| l.contains("Illegal SNI"))
            .count()
    };
    // Handshakes in four parallel lanes (s_client is a process each); every one gets the default
    // certificate (rustls ignores the address).
    let lanes: Vec<_> = (0..4)
        .map(|_| {
            let addr = rauta.https;
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let out = s_client(addr, Some("127.0.0.1"), &[]);
                    let text = String::from_utf8_lossy(&out.stdout);
                    assert!(text.contains("subject="), "no handshake:\n{text}");
                }
            })
        })
        .collect();
    for lane in lanes {
        lane.join().unwrap();
    }
    // The first warning is logged (the problem stays visible), then nothing for a minute.
    rauta.wait_for_log("Illegal SNI");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let lines = illegal(&rauta);
    assert!(
        (1..=3).contains(&lines),
        "{lines} log lines for 100 handshakes"
    );
}

/// Issue 4's audit: `testssl.sh` against the HTTPS listener (an ECDSA and an RSA host, each with its
/// chain) finds nothing rated HIGH or CRITICAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testssl_finds_nothing_high_or_critical() {
    let testssl = Command::new("testssl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !require(testssl, "testssl.sh (Debian package testssl.sh)") {
        return;
    }
    let pki = Pki::new("rauta test intermediate");
    let (rauta, dir, _web) = start_sni_setup(&pki, &[]).await;
    let root = pki.write_root(&dir);
    for host in ["ec.example", "rsa.example"] {
        let report = dir.dir.path().join(format!("..testssl-{host}.json"));
        let target = format!("{host}:{}", rauta.https.port());
        let root = root.clone();
        let report_path = report.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("testssl")
                .args([
                    "--quiet",
                    "--color",
                    "0",
                    "--warnings",
                    "off",
                    "--ip",
                    "127.0.0.1",
                ])
                .arg("--jsonfile")
                .arg(&report_path)
                .arg("--add-ca")
                .arg(&root)
                .arg(&target)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
            panic!(
                "{host}: no report ({e}); testssl said:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let findings: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert!(!findings.is_empty(), "{host}: empty report");
        let severe: Vec<&serde_json::Value> = findings
            .iter()
            .filter(|f| matches!(f["severity"].as_str(), Some("HIGH" | "CRITICAL")))
            .collect();
        assert!(severe.is_empty(), "{host}: {severe:#?}");
        // It reached the listener and spoke TLS 1.3 with it.
        assert!(
            findings.iter().any(|f| f["id"] == "TLS1_3"
                && f["finding"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("offered"))),
            "{host}: {findings:#?}"
        );
    }
}
