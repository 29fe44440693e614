//! The root part of `cargo xtask demo`: Tier 1 in the kernel, in a network-namespace topology it builds
//! and always removes.
//!
//! ```text
//! client 198.18.0.2 ── veth ── 198.18.0.1:80 (rauta, XDP + TC) 198.18.1.1 ── veth ── 198.18.1.2, .3 (echo)
//! ```
//!
//! Requests to an Exact route are spliced to a backend in the kernel (Tier 1); a Prefix route and a POST
//! go to the userspace proxy (Tier 3). The demo prints each answer's backend and whether the request was
//! forwarded by Tier 3 (Tier 3 adds `X-Forwarded-For`, the kernel adds nothing), then the per-tier
//! counters from `/metrics`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cmd::{self, output};
use crate::netns_lab::{netns, Lab, LabSpec};
use crate::procs::Guard;

/// The namespaces, by role.
const CLIENT: &str = "rauta-demo-client";
const NODE: &str = "rauta-demo-node";
const BACKENDS: &str = "rauta-demo-backends";
/// The VIP RAUTA serves on, in the node namespace.
const VIP: &str = "198.18.0.1:80";

/// The kernel demo's routes.
const MANIFEST: &str = include_str!("../../examples/kernel-demo.yaml");

/// One request of the demo: method, path, the tier expected to serve it, and why.
const REQUESTS: &[(&str, &str, &str, &str)] = &[
    ("GET", "/api/users", "3", "Prefix route: userspace"),
    (
        "GET",
        "/hello",
        "1",
        "GET on an Exact route: spliced in the kernel",
    ),
    (
        "GET",
        "/hello",
        "1",
        "another client port, Maglev may pick the other backend",
    ),
    ("HEAD", "/hello", "1", "HEAD on an Exact route"),
    ("GET", "/hello", "1", "again"),
    ("POST", "/hello", "3", "POST: not Tier 1"),
];

/// The keep-alive part: one curl invocation, these paths over one connection, each routed by its own
/// path (the backend and tier expected for each).
const KEEP_ALIVE: &[(&str, &str, &str)] = &[
    ("/a", "echo-a", "1"),
    ("/b", "echo-b", "1"),
    ("/a", "echo-a", "1"),
    ("/api/users", "", "3"),
];

/// How many requests the kernel demo sends.
pub const REQUEST_COUNT: usize = REQUESTS.len() + KEEP_ALIVE.len();

/// The demo's namespaces and veths.
static LAB: LabSpec = LabSpec {
    client: CLIENT,
    node: NODE,
    backends: BACKENDS,
    client_leg: ("rd-node-c", "rd-client"),
    backend_leg: ("rd-node-b", "rd-backends"),
    backend_addrs: &["198.18.1.2", "198.18.1.3"],
    sysctls: &[],
};

/// Runs the kernel part of the demo with the built binaries in `bin`. Returns the number of requests
/// served by another tier than expected.
pub fn run(bin: &Path, log_dir: &Path) -> Result<usize> {
    for tool in ["ip", "ethtool", "curl"] {
        if !cmd::on_path(tool) {
            bail!("the kernel demo needs `{tool}`; run `cargo xtask setup`");
        }
    }
    println!(
        "\n==> Tier 1 in the kernel: namespaces {CLIENT}, {NODE}, {BACKENDS} (198.18.0.0/15), removed at the end"
    );
    let topology = Lab::create(&LAB)?;

    let mut guards = Vec::new();
    for (name, addr) in [("echo-a", "198.18.1.2:8080"), ("echo-b", "198.18.1.3:8080")] {
        let mut echo = netns(BACKENDS);
        echo.arg(bin.join("rauta-echo"))
            .args(["--listen", addr, "--name", name, "--threads", "1"])
            .stdout(Stdio::piped());
        let mut g = Guard::spawn(format!("rauta-echo {name}"), &mut echo)?;
        g.wait_for_line("listening on", Duration::from_secs(10))?;
        println!("  {name} on {addr} (namespace {BACKENDS})");
        guards.push(g);
    }

    // The splice needs the backends' MACs in the node's neighbour table (the FIB lookup does not resolve
    // them; a hit whose neighbour is unknown is served by Tier 3, whose connection resolves it).
    for addr in ["198.18.1.2:8080", "198.18.1.3:8080"] {
        output(
            netns(NODE)
                .args(["curl", "-sS", "--max-time", "5", "-o", "/dev/null"])
                .arg(format!("http://{addr}/")),
        )
        .with_context(|| format!("the node cannot reach the backend {addr}"))?;
    }
    println!("  the node reached both backends (their MACs are in its neighbour table)");

    let manifest = log_dir.join("kernel-demo.yaml");
    std::fs::write(&manifest, MANIFEST)?;
    let log_path = log_dir.join("rauta-kernel.log");
    let log = std::fs::File::create(&log_path)?;
    let mut rauta = netns(NODE);
    rauta
        .arg(bin.join("rauta"))
        .args(["run", "--manifests"])
        .arg(&manifest)
        .args(["--http-listen", VIP, "--admin-listen", "127.0.0.1:0"])
        .args([
            "--kernel-tiers",
            "required",
            "--interface",
            LAB.client_leg.0,
        ])
        .args(["--interface", LAB.backend_leg.0, "--xdp-mode", "generic"])
        .args(["--workers", "1", "--print-listen-addrs"])
        .stdout(Stdio::piped())
        .stderr(log);
    println!(
        "  $ {}",
        cmd::display(&rauta).replace(&format!("{}/", crate::cmd::repo_root().display()), "")
    );
    let mut proxy = Guard::spawn("rauta (kernel demo)", &mut rauta)?;
    let line = proxy
        .wait_for_line("listening", Duration::from_secs(20))
        .with_context(|| format!("rauta did not start; see {}", log_path.display()))?;
    let (_, admin) = crate::demo::parse_listen_line(&line)?;
    let on = std::fs::read_to_string(&log_path).unwrap_or_default();
    if let Some(l) = on.lines().find(|l| l.contains("kernel tiers on")) {
        println!("  log: {}", l.trim());
    }

    let metrics = |proxy: &mut Guard| -> Result<String> {
        proxy.check_alive()?;
        output(netns(NODE).args([
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://{admin}/metrics"),
        ]))
    };
    // Every Tier 1 series, whatever its status class.
    let tier1 = |m: &str| -> u64 {
        m.lines()
            .filter(|l| l.starts_with("rauta_requests_total{tier=\"1\","))
            .filter_map(|l| {
                l.rsplit_once(' ')
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            })
            .sum()
    };
    let mut unexpected = 0;
    println!("\n  requests from the client namespace (Host: kernel.demo.example):");
    for (method, path, tier, why) in REQUESTS {
        let before = tier1(&metrics(&mut proxy)?);
        let mut curl = netns(CLIENT);
        curl.args([
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-D",
            "-",
        ])
        .args(["-H", "Host: kernel.demo.example", "-X", method]);
        if *method == "HEAD" {
            curl.arg("-I");
        }
        curl.arg(format!("http://{VIP}{path}"));
        let head = output(&mut curl).unwrap_or_else(|e| format!("error: {e:#}"));
        let status = head.split_whitespace().nth(1).unwrap_or("?").to_owned();
        let backend = head
            .lines()
            .find_map(|l| l.strip_prefix("x-backend: "))
            .unwrap_or("(none)")
            .trim()
            .to_owned();
        let served = if tier1(&metrics(&mut proxy)?) > before {
            "1"
        } else {
            "3"
        };
        let ok = served == *tier && status == "200";
        if !ok {
            unexpected += 1;
        }
        println!(
            "    {method:<4} {path:<10} {status}, answered by {backend:<6} Tier {served} {} {why}",
            if ok { "ok        " } else { "UNEXPECTED" },
        );
    }

    unexpected += keep_alive(&mut || metrics(&mut proxy))?;

    println!("\n  counters (GET http://{admin}/metrics in the node namespace):");
    let m = metrics(&mut proxy)?;
    for line in m.lines().filter(|l| {
        (l.starts_with("rauta_requests_total{tier=")
            || l.starts_with("rauta_kernel_packets_total{reason=\"splice_")
            || l.starts_with("rauta_kernel_packets_total{reason=\"tc_splice")
            || l.starts_with("rauta_kernel_packets_total{reason=\"handoff_syn_replayed"))
            && !l.ends_with(" 0")
    }) {
        println!("    {line}");
    }
    drop(proxy);
    drop(guards);
    drop(topology);
    println!(
        "  stopped rauta (programs detached) and removed the namespaces; log: {}",
        log_path.display()
    );
    Ok(unexpected)
}

/// One curl invocation fetching [`KEEP_ALIVE`]'s paths over one connection: each request is routed by
/// its own path — a fresh splice to another backend, back, then a move to Tier 3. Prints what answered
/// each and returns how many were unexpected.
fn keep_alive(metrics: &mut dyn FnMut() -> Result<String>) -> Result<usize> {
    println!(
        "\n  one connection, {} requests (one curl, keep-alive):",
        KEEP_ALIVE.len()
    );
    let moves = |m: &str| sample(m, "rauta_kernel_packets_total{reason=\"splice_switch\"}");
    let closed = |m: &str| {
        sample(
            m,
            "rauta_kernel_packets_total{reason=\"splice_old_leg_closed\"}",
        )
    };
    let before = metrics()?;
    let mut curl = netns(CLIENT);
    curl.args(["curl", "-sS", "--max-time", "10"])
        .args(["-H", "Host: kernel.demo.example"])
        .args(["-w", "%{num_connects} %{http_code} %header{x-backend}\\n"]);
    for (path, _, _) in KEEP_ALIVE {
        // `-o` holds for one URL: the bodies would mix with the `-w` lines.
        curl.args(["-o", "/dev/null"])
            .arg(format!("http://{VIP}{path}"));
    }
    let out = output(&mut curl).unwrap_or_else(|e| format!("error: {e:#}"));
    let after = metrics()?;
    let (switched, closed_legs) = (
        moves(&after) - moves(&before),
        closed(&after) - closed(&before),
    );
    let lines: Vec<&str> = out.lines().collect();
    let mut unexpected = 0;
    let mut connects = 0;
    for (i, (path, expected, tier)) in KEEP_ALIVE.iter().enumerate() {
        let mut fields = lines.get(i).copied().unwrap_or("").split_whitespace();
        connects += fields
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        let status = fields.next().unwrap_or("?");
        let backend = fields.next().unwrap_or("(none)");
        // Tier 3 balances by itself: any backend will do there.
        let ok = status == "200" && (expected.is_empty() || backend == *expected);
        if !ok {
            unexpected += 1;
        }
        let why = match (i, *tier) {
            (0, _) => "Exact route to echo-a: spliced",
            (_, "1") => "another Exact route: a fresh splice from the kernel, the old leg closed",
            _ => "Prefix route: the connection moves to Tier 3",
        };
        println!(
            "    GET  {path:<10} {status}, answered by {backend:<6} Tier {tier} {} {why}",
            if ok { "ok        " } else { "UNEXPECTED" },
        );
    }
    let moved_as_expected = connects == 1 && switched == 3 && closed_legs == 3;
    println!(
        "    curl connected {connects} time(s); the kernel moved the connection {switched} times and \
         closed {closed_legs} old backend legs {}",
        if moved_as_expected { "ok" } else { "UNEXPECTED (expected 1, 3, 3)" }
    );
    if !moved_as_expected && unexpected == 0 {
        unexpected = 1;
    }
    Ok(unexpected)
}

/// The value of the sample `name` (exact series, no labels) in a metrics text, or 0.
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
