//! The real `rauta` binary with `--kernel-tiers required` on one end of a veth pair: a client in another
//! network namespace gets its answer from the backend through XDP's SYN cookie, the hand-off to Tier 3,
//! and Tier 3's proxying; `/metrics` shows what the kernel counted; SIGTERM detaches XDP.
//!
//! Needs root, `ip`, `ethtool` and `curl`. Without them it prints "skipped" and passes, unless CI=true,
//! where it fails. Topology (198.18.0.0/15, namespaces named with the process id, deleted on drop):
//! client ns `198.18.0.1/30` ── veth ── `198.18.0.2/30` server ns (rauta on :8080, echo backend on :0).

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const SERVER_IP: &str = "198.18.0.2";
const CLIENT_IP: &str = "198.18.0.1";
const HOST: &str = "kernel.test";

/// Runs a command, returning its stdout, or a message with its stderr.
fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// True if the test can run; panics under CI=true when it cannot.
fn can_run(test: &str) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["ip", "ethtool", "curl"]
        .iter()
        .all(|t| Command::new(t).arg("-V").output().is_ok());
    match (root, tools) {
        (true, true) => true,
        _ if ci => panic!(
            "{test}: CI=true but this test cannot run: needs root (got root={root}) and ip, ethtool, curl (found={tools})"
        ),
        _ => {
            println!("{test}: skipped: needs root and ip, ethtool, curl");
            false
        }
    }
}

/// Two namespaces and a veth between them; both namespaces deleted on drop (and with them the veth).
struct Pair {
    server_ns: String,
    client_ns: String,
    server_dev: String,
    client_dev: String,
}

impl Pair {
    fn create() -> Pair {
        let id = std::process::id();
        let pair = Pair {
            server_ns: format!("rauta-bin-s-{id}"),
            client_ns: format!("rauta-bin-c-{id}"),
            server_dev: format!("rbs{id}"),
            client_dev: format!("rbc{id}"),
        };
        let (s, c, sd, cd) = (
            pair.server_ns.as_str(),
            pair.client_ns.as_str(),
            pair.server_dev.as_str(),
            pair.client_dev.as_str(),
        );
        let server = format!("{SERVER_IP}/30");
        let client = format!("{CLIENT_IP}/30");
        for cmd in [
            vec!["ip", "netns", "add", s],
            vec!["ip", "netns", "add", c],
            vec![
                "ip", "link", "add", sd, "netns", s, "type", "veth", "peer", "name", cd, "netns", c,
            ],
            vec!["ip", "-n", s, "addr", "add", &server, "dev", sd],
            vec!["ip", "-n", c, "addr", "add", &client, "dev", cd],
            // XDP rewrites packets and needs full checksums, not offloaded partial ones.
            vec!["ip", "netns", "exec", s, "ethtool", "-K", sd, "tx", "off"],
            vec!["ip", "netns", "exec", c, "ethtool", "-K", cd, "tx", "off"],
            vec!["ip", "-n", s, "link", "set", "lo", "up"],
            vec!["ip", "-n", c, "link", "set", "lo", "up"],
            vec!["ip", "-n", s, "link", "set", sd, "up"],
            vec!["ip", "-n", c, "link", "set", cd, "up"],
        ] {
            run(&cmd).unwrap();
        }
        pair
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// Moves the calling thread into the named network namespace.
fn enter(ns: &str) {
    let file = File::open(format!("/var/run/netns/{ns}")).unwrap();
    // SAFETY: setns with a valid namespace fd; affects only the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// veth delivers XDP_TX frames only to a peer that runs an XDP program: attach the pass program from
/// the same BPF object to the client's end. Detached when the returned value drops.
fn client_xdp_pass(pair: &Pair) -> aya::Ebpf {
    let (ns, dev) = (pair.client_ns.clone(), pair.client_dev.clone());
    std::thread::spawn(move || {
        enter(&ns);
        let mut ebpf = aya::Ebpf::load(rauta_dataplane::object::BPF_OBJECT).unwrap();
        let pass: &mut aya::programs::Xdp = ebpf
            .program_mut(rauta_common::maps::XDP_PASS_PROGRAM)
            .unwrap()
            .try_into()
            .unwrap();
        pass.load().unwrap();
        pass.attach(&dev, aya::programs::XdpMode::Driver).unwrap();
        ebpf
    })
    .join()
    .unwrap()
}

/// The echo backend on a thread inside the server namespace, bound to port 0 of the server address.
fn backend_in(ns: &str) -> SocketAddr {
    echo_in(ns, &format!("{SERVER_IP}:0"), "kernel-backend")
}

/// An echo backend named `name` on a thread inside namespace `ns`, bound to `addr`.
fn echo_in(ns: &str, addr: &str, name: &'static str) -> SocketAddr {
    let (ns, addr) = (ns.to_owned(), addr.parse().unwrap());
    let (tx, rx) = mpsc::channel();
    // The thread lives until the test process exits; the namespace goes away after its socket closes.
    std::thread::spawn(move || {
        enter(&ns);
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

/// The real binary inside the server namespace; killed on drop if still running.
struct Server {
    child: Child,
    admin: SocketAddr,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    fn start(pair: &Pair, manifests: &std::path::Path) -> Server {
        Server::start_in(
            &pair.server_ns,
            manifests,
            &format!("{SERVER_IP}:8080"),
            &["--interface", &pair.server_dev],
        )
    }

    /// The binary in namespace `ns`, serving `listen` with Tier 1 on, `extra` flags added.
    fn start_in(ns: &str, manifests: &std::path::Path, listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, RAUTA, "run", "--manifests"])
            .arg(manifests)
            .args(extra)
            .args([
                "--http-listen",
                listen,
                "--kernel-tiers",
                "required",
                "--admin-listen",
                "127.0.0.1:0",
                "--print-listen-addrs",
                "--workers",
                "1",
                "--log-level",
                "rauta=debug,info",
                "--shutdown-timeout",
                "2s",
            ])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let logs = logs.clone();
            let stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[rauta] {line}");
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let admin = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("admin="))
            .unwrap_or_else(|| {
                panic!(
                    "rauta did not start ({line:?}); stderr:\n{}",
                    logs.lock().unwrap().join("\n")
                )
            })
            .parse()
            .unwrap();
        Server { child, admin, logs }
    }

    fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// curl inside `ns`: (status code, body).
fn curl(ns: &str, url: &str, host: Option<&str>) -> (String, String) {
    let mut args = vec!["netns", "exec", ns, "curl", "-sS", "--max-time", "10"];
    let header;
    if let Some(host) = host {
        header = format!("Host: {host}");
        args.extend(["-H", &header]);
    }
    args.extend(["-w", "\n%{http_code}", url]);
    let out = Command::new("ip").args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_owned(), body.to_owned())
}

/// The value of one sample line `name{labels} value` in an OpenMetrics text.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// `inKernel` of the route with `path` in a `/routes` document (`None`: no such route).
fn in_kernel(routes: &serde_json::Value, path: &str) -> Option<bool> {
    routes["routes"]
        .as_array()?
        .iter()
        .find(|r| r["path"] == path)?["inKernel"]
        .as_bool()
}

fn xdp_attached(pair: &Pair) -> bool {
    run(&[
        "ip",
        "-n",
        &pair.server_ns,
        "link",
        "show",
        "dev",
        &pair.server_dev,
    ])
    .unwrap()
    .contains("xdp")
}

#[test]
fn real_binary_serves_through_the_kernel_tiers_and_detaches_on_sigterm() {
    if !can_run("real_binary_serves_through_the_kernel_tiers_and_detaches_on_sigterm") {
        return;
    }
    let pair = Pair::create();
    let _client_xdp = client_xdp_pass(&pair);
    let backend = backend_in(&pair.server_ns);

    let dir = ManifestDir::new();
    dir.write("class.yaml", &ingress_class());
    dir.write("svc.yaml", &service("web", &[backend]));
    let write_ingress = |exact: &[&str]| {
        // A Prefix route stays in Tier 3; each Exact path with this host goes into the kernel.
        let mut rules = vec![path("/tier3", "Prefix", "web")];
        rules.extend(exact.iter().map(|p| path(p, "Exact", "web")));
        dir.write("ing.yaml", &ingress("web", &[(Some(HOST), &rules)], None));
    };
    write_ingress(&["/headers"]);
    let server = Server::start(&pair, dir.path());
    let on: Vec<String> = server
        .logs()
        .into_iter()
        .filter(|l| l.contains("kernel tiers"))
        .collect();
    assert_eq!(on.len(), 1, "{on:?}");
    assert!(
        on[0].contains("kernel tiers on: XDP (")
            && on[0].contains(&pair.server_dev)
            && on[0].contains(&format!("VIP {SERVER_IP}:8080")),
        "{on:?}"
    );
    assert!(
        xdp_attached(&pair),
        "no XDP program on the server's veth end"
    );

    // A Tier 1 route: the kernel routes the first request (counted), Tier 3 serves it.
    let (code, body) = curl(
        &pair.client_ns,
        &format!("http://{SERVER_IP}:8080/headers"),
        Some(HOST),
    );
    assert_eq!(code, "200", "{body}");
    let headers: serde_json::Value = serde_json::from_str(&body).unwrap();
    // The hand-off keeps the client's own address: Tier 3's peer is the real client.
    assert_eq!(headers["x-real-ip"], CLIENT_IP, "{headers}");
    assert_eq!(headers["x-forwarded-for"], CLIENT_IP, "{headers}");

    let admin = format!("http://{}", server.admin);
    let (code, metrics) = curl(&pair.server_ns, &format!("{admin}/metrics"), None);
    assert_eq!(code, "200");
    assert!(
        metrics.contains("rauta_kernel_tiers_enabled 1"),
        "{metrics}"
    );
    for reason in ["syn_cookie_sent", "ack_cookie_ok", "handoff_syn_replayed"] {
        let series = format!("rauta_kernel_packets_total{{reason=\"{reason}\"}}");
        assert!(
            sample(&metrics, &series).unwrap_or(0) > 0,
            "{series}:\n{metrics}"
        );
    }
    let hit = "rauta_kernel_route_decisions_total{reason=\"tier1_route_hit\"}";
    assert!(sample(&metrics, hit).unwrap_or(0) > 0, "{hit}:\n{metrics}");
    // The splice's gauges and its request counter are exported (their values depend on whether the
    // endpoints are reachable from the node: `rauta-dataplane`'s splice_netns tests cover the splice).
    for series in [
        "rauta_kernel_active_splices",
        "rauta_kernel_nat_ports_in_use",
        "rauta_requests_total{tier=\"1\",code_class=\"unknown\",service=\"kernel\"}",
        "rauta_kernel_first_request_duration_seconds_count",
    ] {
        assert!(sample(&metrics, series).is_some(), "{series}:\n{metrics}");
    }
    let errors = sample(&metrics, "rauta_kernel_route_update_errors_total");
    assert_eq!(errors, Some(0), "{metrics}");

    let (code, routes) = curl(&pair.server_ns, &format!("{admin}/routes"), None);
    assert_eq!(code, "200");
    let routes: serde_json::Value = serde_json::from_str(&routes).unwrap();
    assert_eq!(in_kernel(&routes, "/headers"), Some(true), "{routes}");
    assert_eq!(in_kernel(&routes, "/tier3"), Some(false), "{routes}");

    // A reload rewrites the route maps: the new Exact route is live, the removed one gone.
    write_ingress(&["/echo"]);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, routes) = curl(&pair.server_ns, &format!("{admin}/routes"), None);
        let routes: serde_json::Value = serde_json::from_str(&routes).unwrap();
        if in_kernel(&routes, "/echo") == Some(true) {
            assert_eq!(in_kernel(&routes, "/headers"), None, "{routes}");
            break;
        }
        assert!(Instant::now() < deadline, "reload not applied: {routes}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = sample(
        &curl(&pair.server_ns, &format!("{admin}/metrics"), None).1,
        hit,
    );
    let (code, body) = curl(
        &pair.client_ns,
        &format!("http://{SERVER_IP}:8080/echo"),
        Some(HOST),
    );
    assert_eq!(code, "200", "{body}");
    let after = sample(
        &curl(&pair.server_ns, &format!("{admin}/metrics"), None).1,
        hit,
    );
    assert_eq!(
        after,
        before.map(|n| n + 1),
        "the reloaded route was not hit in the kernel"
    );

    // SIGTERM: a clean exit, and nothing left on the interface.
    let mut server = server;
    run(&["kill", "-TERM", &server.child.id().to_string()]).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "rauta did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}: {:?}", server.logs());
    assert!(
        !xdp_attached(&pair),
        "XDP still attached after exit: {}",
        run(&[
            "ip",
            "-n",
            &pair.server_ns,
            "link",
            "show",
            "dev",
            &pair.server_dev
        ])
        .unwrap()
    );
}

/// Client, node and backends namespaces: rauta on the node between the two, so that Tier 1 opens its
/// own connections to the backends (a backend on the node itself is local, which the splice leaves to
/// Tier 3). All three deleted on drop.
struct Lab {
    client: String,
    node: String,
    backends: String,
    node_devs: [String; 2],
}

/// The VIP, on the node's client-side interface.
const LAB_VIP: &str = "198.18.2.1";
/// Two backend addresses in the backends namespace.
const LAB_A: &str = "198.18.3.2";
const LAB_B: &str = "198.18.3.3";

impl Lab {
    fn create() -> Lab {
        let id = std::process::id();
        let lab = Lab {
            client: format!("rauta-kh-c-{id}"),
            node: format!("rauta-kh-n-{id}"),
            backends: format!("rauta-kh-b-{id}"),
            node_devs: [format!("khnc{id}"), format!("khnb{id}")],
        };
        let (c, n, b) = (
            lab.client.as_str(),
            lab.node.as_str(),
            lab.backends.as_str(),
        );
        let (nc, nb) = (lab.node_devs[0].as_str(), lab.node_devs[1].as_str());
        let (cn, bn) = (format!("khcn{id}"), format!("khbn{id}"));
        let mut steps: Vec<Vec<&str>> = vec![
            vec!["ip", "netns", "add", c],
            vec!["ip", "netns", "add", n],
            vec!["ip", "netns", "add", b],
            vec![
                "ip", "link", "add", nc, "netns", n, "type", "veth", "peer", "name", &cn, "netns",
                c,
            ],
            vec![
                "ip", "link", "add", nb, "netns", n, "type", "veth", "peer", "name", &bn, "netns",
                b,
            ],
            vec!["ip", "-n", n, "addr", "add", "198.18.2.1/24", "dev", nc],
            vec!["ip", "-n", n, "addr", "add", "198.18.3.1/24", "dev", nb],
            vec!["ip", "-n", c, "addr", "add", "198.18.2.2/24", "dev", &cn],
            vec!["ip", "-n", b, "addr", "add", "198.18.3.2/24", "dev", &bn],
            vec!["ip", "-n", b, "addr", "add", "198.18.3.3/24", "dev", &bn],
            vec![
                "ip",
                "netns",
                "exec",
                n,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        ];
        for (ns, dev) in [(n, nc), (n, nb), (c, cn.as_str()), (b, bn.as_str())] {
            // XDP rewrites packets and needs full checksums, not offloaded partial ones.
            steps.push(vec![
                "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off",
            ]);
            steps.push(vec!["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        for ns in [c, n, b] {
            steps.push(vec!["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        for (ns, via) in [(c, "198.18.2.1"), (b, "198.18.3.1")] {
            steps.push(vec!["ip", "-n", ns, "route", "add", "default", "via", via]);
        }
        for step in &steps {
            run(step).unwrap();
        }
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.client, &self.node, &self.backends] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// A backend at `addr` in namespace `ns` that answers `x-backend: b` with status 200, except on
/// `/healthz`, which fails (503) while `healthy` is false. HTTP/1.1 keep-alive, framed by length.
fn switchable_backend_in(
    ns: &str,
    addr: &str,
    healthy: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::{Read, Write};
    let (ns, addr) = (ns.to_owned(), addr.to_owned());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        enter(&ns);
        let listener = std::net::TcpListener::bind(&addr).unwrap();
        tx.send(()).unwrap();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let healthy = healthy.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let failing = head.starts_with("GET /healthz ")
                        && !healthy.load(std::sync::atomic::Ordering::SeqCst);
                    let status = if failing {
                        "503 Service Unavailable"
                    } else {
                        "200 OK"
                    };
                    let response =
                        format!("HTTP/1.1 {status}\r\nx-backend: b\r\nContent-Length: 1\r\n\r\nb");
                    if conn.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    rx.recv_timeout(PATIENCE).unwrap();
}

/// `n` GETs from the client namespace, each on a new connection (so the client port and with it the
/// Maglev pick changes): the `x-backend` of every answer.
fn backends_answering(lab: &Lab, n: usize) -> Vec<String> {
    let url = format!("http://{LAB_VIP}/who");
    (0..n)
        .map(|_| {
            // One curl per request: curl reuses its connection across URLs (and `--next`).
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &lab.client,
                    "curl",
                    "-sS",
                    "--max-time",
                    "10",
                ])
                .args(["-H", "Host: kernel.test", "-o", "/dev/null"])
                .args(["-w", "%{http_code} %header{x-backend}", &url])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "curl: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let (code, backend) = text.split_once(' ').unwrap_or((&text, ""));
            assert_eq!(code, "200", "{text}");
            backend.to_owned()
        })
        .collect()
}

/// Issue 4's health-aware balancing reaches the kernel: an endpoint whose active checks fail gets no
/// new Tier 1 connection (the kernel's Maglev table is the one Tier 3 picks from, over the healthy
/// endpoints), and gets them again when it recovers. Every request stays in Tier 1.
#[test]
fn tier_1_follows_endpoint_health() {
    if !can_run("tier_1_follows_endpoint_health") {
        return;
    }
    let lab = Lab::create();
    echo_in(&lab.backends, &format!("{LAB_A}:8080"), "a");
    let b_healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    switchable_backend_in(&lab.backends, &format!("{LAB_B}:8080"), b_healthy.clone());
    // The splice needs the backends' MACs in the node's neighbour table.
    for backend in [LAB_A, LAB_B] {
        curl(&lab.node, &format!("http://{backend}:8080/"), None);
    }

    let dir = ManifestDir::new();
    dir.write("class.yaml", &ingress_class());
    let endpoints: Vec<SocketAddr> = [LAB_A, LAB_B]
        .iter()
        .map(|ip| format!("{ip}:8080").parse().unwrap())
        .collect();
    dir.write(
        "svc.yaml",
        &annotated_service(
            "web",
            &endpoints,
            &[
                ("rauta.io/health-check-path", "/healthz"),
                ("rauta.io/health-check-interval", "200ms"),
                ("rauta.io/health-check-timeout", "200ms"),
                ("rauta.io/health-check-unhealthy-threshold", "1"),
                ("rauta.io/health-check-healthy-threshold", "1"),
            ],
        ),
    );
    dir.write(
        "ing.yaml",
        &ingress(
            "web",
            &[(Some(HOST), &[path("/who", "Exact", "web")])],
            None,
        ),
    );
    let (nc, nb) = (lab.node_devs[0].clone(), lab.node_devs[1].clone());
    let server = Server::start_in(
        &lab.node,
        dir.path(),
        &format!("{LAB_VIP}:80"),
        &[
            "--interface",
            &nc,
            "--interface",
            &nb,
            "--xdp-mode",
            "generic",
        ],
    );
    let admin = format!("http://{}/metrics", server.admin);
    let metrics = || curl(&lab.node, &admin, None).1;
    let healthy = |ip: &str| {
        sample(
            &metrics(),
            &format!("rauta_endpoint_healthy{{service=\"default/web:80\",endpoint=\"{ip}:8080\"}}"),
        )
    };
    let spliced = || {
        sample(
            &metrics(),
            "rauta_kernel_packets_total{reason=\"splice_syn_sent\"}",
        )
        .unwrap_or(0)
    };
    let wait_for = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + PATIENCE;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out: {what}; log: {:?}",
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    wait_for("b is unhealthy", &|| {
        healthy(LAB_B) == Some(0) && healthy(LAB_A) == Some(1)
    });
    let before = spliced();
    let answers = backends_answering(&lab, 16);
    assert!(
        answers.iter().all(|b| b == "a"),
        "an unhealthy endpoint got new connections: {answers:?}"
    );
    assert_eq!(
        spliced() - before,
        16,
        "every request spliced in the kernel"
    );
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l.contains("kernel Maglev tables follow endpoint health")),
        "{:?}",
        server.logs()
    );

    b_healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_for("b is healthy again", &|| healthy(LAB_B) == Some(1));
    let before = spliced();
    let answers = backends_answering(&lab, 24);
    assert!(
        answers.iter().any(|b| b == "b"),
        "a recovered endpoint got no connection: {answers:?}"
    );
    assert!(answers.iter().any(|b| b == "a"), "{answers:?}");
    assert_eq!(
        spliced() - before,
        24,
        "every request spliced in the kernel"
    );
}
