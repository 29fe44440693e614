//! `cargo xtask demo`: RAUTA routing real requests between real backends, on loopback, in ~a minute.
//!
//! The backends are read from the manifests themselves (`rauta check --output json` lists every Service
//! and its endpoints), so the demo starts exactly the echo servers the manifests point at. Every request
//! states which backend should answer and the demo checks it, so a routing regression shows up here too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd::{self, cargo, output, repo_root, target_dir};
use crate::json::Json;
use crate::procs::Guard;
use crate::setup::{self, SetupArgs};

/// The manifests the demo serves (relative to the repository root).
const MANIFESTS: &str = "examples/demo.yaml";

/// One demo request: Host header (`None`: curl's default, the listener address), path, the Service
/// expected to answer, and why.
struct Probe {
    host: Option<&'static str>,
    path: &'static str,
    expect: &'static str,
    why: &'static str,
}

/// The requests, one per routing rule of examples/demo.yaml worth seeing.
const PROBES: &[Probe] = &[
    Probe {
        host: Some("shop.demo.example"),
        path: "/status",
        expect: "api",
        why: "Exact /status",
    },
    Probe {
        host: Some("shop.demo.example"),
        path: "/status/x",
        expect: "web",
        why: "Exact matches only itself; Prefix / takes the rest",
    },
    Probe {
        host: Some("shop.demo.example"),
        path: "/api/v1",
        expect: "api",
        why: "Prefix /api",
    },
    Probe {
        host: Some("shop.demo.example"),
        path: "/",
        expect: "web",
        why: "Prefix / on an exact host",
    },
    Probe {
        host: Some("blog.demo.example"),
        path: "/anything",
        expect: "web",
        why: "wildcard host *.demo.example",
    },
    Probe {
        host: Some("a.b.demo.example"),
        path: "/",
        expect: "fallback",
        why: "a wildcard covers one label only: default backend",
    },
    Probe {
        host: None,
        path: "/api/users",
        expect: "api",
        why: "hostless rule (any Host)",
    },
    Probe {
        host: None,
        path: "/other",
        expect: "fallback",
        why: "no rule matches: defaultBackend",
    },
];

/// An endpoint to serve with one echo backend.
struct Endpoint {
    name: String,
    addr: String,
    service: String,
}

/// Runs the demo.
pub fn run() -> Result<()> {
    let root = repo_root();
    let manifests = root.join(MANIFESTS);
    if !manifests.is_file() {
        bail!(
            "{} not found; the demo serves that file",
            manifests.display()
        );
    }
    println!(
        "RAUTA demo: echo backends and rauta on loopback, routing real requests from {MANIFESTS}\n"
    );
    setup::run(&SetupArgs { demo: true })?;

    println!(
        "\n==> building rauta and rauta-echo (debug build: quicker than release, fine for a demo)"
    );
    cmd::run(cargo().args([
        "build",
        "--quiet",
        "-p",
        "rauta",
        "-p",
        "rauta-testkit",
        "--bins",
    ]))?;
    let bin = target_dir().join("debug");
    let rauta = bin.join("rauta");
    let echo = bin.join("rauta-echo");

    let endpoints = endpoints(&rauta, &manifests)?;
    println!("\n==> starting one rauta-echo backend per endpoint in {MANIFESTS}");
    let mut guards = Vec::new();
    for ep in &endpoints {
        let mut g = Guard::spawn(
            format!("rauta-echo {}", ep.name),
            Command::new(&echo)
                .args(["--listen", &ep.addr, "--name", &ep.name, "--threads", "1"])
                .stdout(Stdio::piped()),
        )?;
        g.wait_for_line("listening on", Duration::from_secs(10))
            .with_context(|| {
                format!(
                    "is {} already in use? (ss -ltnp | grep {})",
                    ep.addr, ep.addr
                )
            })?;
        println!(
            "  {:<10} on {:<18} endpoint of Service {}",
            ep.name, ep.addr, ep.service
        );
        guards.push(g);
    }

    let log_dir = target_dir().join("demo");
    std::fs::create_dir_all(&log_dir)?;
    let log_path = log_dir.join("rauta.log");
    let log = std::fs::File::create(&log_path)?;
    let https_demo = crate::demo_https::prepare(&log_dir.join("tls"))?;
    let ws_demo = crate::demo_ws::prepare(&log_dir.join("ws"))?;
    println!(
        "\n==> a WebSocket echo backend (tungstenite) on {}, endpoint of Service chat",
        ws_demo.backend
    );
    println!("\n==> starting rauta");
    let mut rauta_cmd = Command::new(&rauta);
    rauta_cmd
        .args(["run", "--manifests"])
        .arg(&manifests)
        .arg("--manifests")
        .arg(&https_demo.manifest)
        .arg("--manifests")
        .arg(&ws_demo.manifest)
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--https-listen", "127.0.0.1:0", "--print-listen-addrs"])
        .stdout(Stdio::piped())
        .stderr(log);
    println!("  {}", shorten(&cmd::display(&rauta_cmd), &root));
    let mut proxy = Guard::spawn("rauta", &mut rauta_cmd)?;
    let line = proxy
        .wait_for_line("listening", Duration::from_secs(15))
        .with_context(|| format!("rauta did not start; see {}", log_path.display()))?;
    let (http, admin) = parse_listen_line(&line)?;
    let https = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("https="))
        .with_context(|| format!("no https= in rauta's line `{line}`"))?
        .to_owned();
    wait_ready(&admin, Duration::from_secs(10), &mut proxy)?;
    println!(
        "  serving HTTP on {http}, admin on {admin} (/readyz is 200); log: {}",
        shorten_path(&log_path, &root).display()
    );

    println!("\n==> requests (each answer names its backend in the x-backend header)");
    let mut wrong = 0;
    for p in PROBES {
        // Shown as a newcomer would type it; run with flags that print only the response head.
        let mut shown = Command::new("curl");
        if let Some(h) = p.host {
            shown.args(["-H", &format!("Host: {h}")]);
        }
        shown.arg(format!("http://{http}{}", p.path));
        println!("  $ {}", cmd::display(&shown));
        let mut curl = Command::new("curl");
        curl.args(["-sS", "-o", "/dev/null", "-D", "-", "--max-time", "5"])
            .args(shown.get_args());
        let (status, backend) = match output(&mut curl) {
            Ok(head) => parse_head(&head),
            Err(e) => {
                // After Ctrl-C the children are gone (they share our process group): stop, don't go on.
                proxy.check_alive().context("stopping")?;
                (format!("error: {e:#}"), None)
            }
        };
        let backend = backend.unwrap_or_else(|| "(none)".into());
        let ok = status == "200"
            && (backend == p.expect || backend.starts_with(&format!("{}-", p.expect)));
        if !ok {
            wrong += 1;
        }
        println!(
            "    {status}, answered by {backend:<9} {} {}",
            if ok { "ok      " } else { "UNEXPECTED, wanted" },
            if ok {
                p.why.to_owned()
            } else {
                format!("{} ({})", p.expect, p.why)
            }
        );
    }

    println!("\n==> HTTPS on {https}: certificate chosen by SNI, and the redirect from HTTP");
    wrong += crate::demo_https::probe(&https_demo, &http, &https)?;

    println!(
        "\n==> WebSocket through RAUTA: one session to {}, messages echoed",
        crate::demo_ws::HOST
    );
    wrong += crate::demo_ws::probe(&http)?;

    println!(
        "\n==> request counters from http://{admin}/metrics (the tier label says who served them)"
    );
    let metrics = output(Command::new("curl").args([
        "-sS",
        "--max-time",
        "5",
        &format!("http://{admin}/metrics"),
    ]))?;
    // Every label combination is pre-registered; the zero series would drown the interesting ones.
    let mut series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("rauta_requests_total") && !l.ends_with(" 0"))
        .collect();
    series.sort();
    for line in &series {
        println!("  {line}");
    }
    if series.is_empty() {
        println!("  (no non-zero rauta_requests_total series found)");
    }
    println!("  (series at 0 not shown; tier=\"3\" is the userspace proxy; on loopback the kernel tiers are off)");
    println!("  more: curl http://{admin}/routes shows the compiled table and each route's tier");

    println!("\n==> stopping rauta and the backends");
    drop(proxy);
    drop(guards);
    let mut requests = PROBES.len();
    if crate::netns_lab::is_root() {
        wrong += crate::demo_kernel::run(&bin, &log_dir)?;
        requests += crate::demo_kernel::REQUEST_COUNT;
    } else {
        println!(
            "\n(run the demo as root to also see Tier 1 serve requests in the kernel: it builds network \
             namespaces and loads XDP and TC programs)"
        );
    }
    if wrong > 0 {
        bail!(
            "{wrong} request(s) were answered by an unexpected backend; see {}",
            log_path.display()
        );
    }
    println!("done: {requests} requests routed as expected, nothing left running");
    Ok(())
}

/// Every endpoint referenced by a route or default backend, named after its Service (`web`, or `web-a`,
/// `web-b` for a Service with several endpoints, in address order).
fn endpoints(rauta: &Path, manifests: &Path) -> Result<Vec<Endpoint>> {
    let out = Command::new(rauta)
        .args(["check", "--output", "json", "--manifests"])
        .arg(manifests)
        .output()
        .context("cannot run rauta check")?;
    if !out.status.success() {
        bail!(
            "rauta check rejected {}:\n{}",
            manifests.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let table = Json::parse(&String::from_utf8_lossy(&out.stdout))
        .context("rauta check printed no JSON")?;
    // Keyed by the Service's name without the port: `demo/api:8080` and `demo/api:http` are one Service.
    let mut by_service: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in table
        .get("routes")
        .items()
        .iter()
        .chain(table.get("defaultBackends").items())
    {
        let Some(service) = entry.get("service").as_str() else {
            continue;
        };
        let service = service.rsplit_once(':').map_or(service, |(s, _)| s);
        let eps = by_service.entry(service.to_owned()).or_default();
        for ep in entry
            .get("endpoints")
            .items()
            .iter()
            .filter_map(Json::as_str)
        {
            if !eps.iter().any(|e| e == ep) {
                eps.push(ep.to_owned());
            }
        }
    }
    let mut result: Vec<Endpoint> = Vec::new();
    for (service, mut eps) in by_service {
        eps.sort();
        // One echo per address: an endpoint shared by two Services keeps its first name.
        eps.retain(|ep| !result.iter().any(|r| &r.addr == ep));
        // "demo/web" -> "web"
        let short = service.rsplit('/').next().unwrap_or(&service);
        for (i, addr) in eps.iter().enumerate() {
            let name = if eps.len() == 1 {
                short.to_owned()
            } else {
                format!("{short}-{}", (b'a' + (i % 26) as u8) as char)
            };
            result.push(Endpoint {
                name,
                addr: addr.clone(),
                service: service.clone(),
            });
        }
    }
    if result.is_empty() {
        bail!(
            "{} names no endpoints; nothing to demo",
            manifests.display()
        );
    }
    Ok(result)
}

/// `http=ADDR admin=ADDR` (the rest of rauta's `--print-listen-addrs` line).
pub fn parse_listen_line(line: &str) -> Result<(String, String)> {
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_owned)
            .with_context(|| format!("no {key} in rauta's line `{line}`"))
    };
    Ok((field("http=")?, field("admin=")?))
}

/// Polls `/readyz` until it answers 200.
pub fn wait_ready(admin: &str, timeout: Duration, proxy: &mut Guard) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let url = format!("http://{admin}/readyz");
    loop {
        let code = output(Command::new("curl").args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "2",
            &url,
        ]))
        .unwrap_or_default();
        if code.trim() == "200" {
            return Ok(());
        }
        proxy.check_alive()?;
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within {timeout:?} (last: {code})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Status line and `x-backend` from a response head printed by `curl -D -`.
fn parse_head(head: &str) -> (String, Option<String>) {
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_owned();
    let backend = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("x-backend")
            .then(|| v.trim().to_owned())
    });
    (status, backend)
}

fn shorten(line: &str, root: &Path) -> String {
    line.replace(&format!("{}/", root.display()), "")
}

fn shorten_path(p: &Path, root: &Path) -> PathBuf {
    p.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parsing() {
        let (s, b) = parse_head("HTTP/1.1 200 OK\r\ncontent-length: 3\r\nX-Backend: web-a\r\n\r\n");
        assert_eq!(s, "200");
        assert_eq!(b.as_deref(), Some("web-a"));
        let (http, admin) = parse_listen_line("http=127.0.0.1:1 admin=127.0.0.1:2").unwrap();
        assert_eq!(
            (http.as_str(), admin.as_str()),
            ("127.0.0.1:1", "127.0.0.1:2")
        );
    }
}
