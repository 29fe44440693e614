//! The HTTPS part of `cargo xtask bench` (issue 4, "Performance"): RAUTA's TLS listener next to nginx with
//! the same certificate (ECDSA P-256, made with openssl at run time), one worker each, the same backend
//! (the `return 200` nginx of bench/nginx-backend.conf), measured one after the other in one run:
//!
//! - HTTPS, HTTP/1.1 keep-alive: wrk over TLS (wrk negotiates TLS 1.3 with both).
//! - HTTP/2 over TLS (ALPN `h2`): h2load, many streams per connection; p50/p99 from its per-request log.
//! - New TLS handshakes per second: wrk with `Connection: close`, so every request is a new connection
//!   and a handshake; with the proxy alone on its core this is per core. wrk offers each connection's
//!   session ticket on its next connection and both proxies accept it: after the first, these are resumed
//!   TLS 1.3 handshakes (PSK with ECDHE, no certificate sent), not full ones.
//! - HTTPS HTTP/1.1 keep-alive with each proxy held to half a core (a cgroup CPU quota during its turn),
//!   so that the proxy and not the client's core is the limit.
//! - HTTPS HTTP/1.1 keep-alive with the proxy's core kept from halting (a `SCHED_IDLE` busy loop on it
//!   during either proxy's turn): an idle virtual core's wake-up latency otherwise lands on the proxy that
//!   leaves its core partly idle. Every keep-alive turn also reports the proxy's run-queue wait per wake-up.
//!
//! Targets from the issue: at least nginx's requests/s with a p99 no worse, for HTTPS HTTP/1.1 and
//! HTTP/2; handshakes/s compared with nginx's.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::cpu_cap::{Budget, CpuCap};
use super::wrk::{self, WrkResult};
use super::{
    cpu_ticks, free_port, manifests, pinned, pinning, start_nginx, wait_port, BenchArgs, Pinning,
};
use crate::cmd::{self, on_path, output};
use crate::demo::{parse_listen_line, wait_ready};
use crate::procs::Guard;

/// Streams per HTTP/2 connection, and connections, for h2load.
const H2_STREAMS: u32 = 10;
const H2_CONNECTIONS: u32 = 10;

/// One scenario's numbers for one proxy.
#[derive(Debug, Clone, Copy, Default)]
struct Numbers {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// Proxy CPU time per request (user + system), microseconds.
    cpu_us: Option<f64>,
    /// How long the proxy's threads waited, on average, between being woken and running (run-queue wait
    /// per time slice, microseconds): tells "the proxy was slow" from "the proxy was not scheduled".
    wait_us: Option<f64>,
}

/// One scenario, both proxies, over the rounds.
#[derive(Default)]
struct Compared {
    rauta: Vec<Numbers>,
    nginx: Vec<Numbers>,
}

impl Compared {
    /// RAUTA over nginx per round: (requests/s ratio, p99 ratio).
    fn ratios(&self) -> (Vec<f64>, Vec<f64>) {
        self.rauta
            .iter()
            .zip(&self.nginx)
            .map(|(a, b)| (a.rps / b.rps.max(1e-9), a.p99_ms / b.p99_ms.max(1e-9)))
            .unzip()
    }

    /// RAUTA over nginx per round in work done per core-second of the proxy: nginx's CPU per request over
    /// RAUTA's. Empty when a round has no CPU figure.
    fn per_core_ratios(&self) -> Vec<f64> {
        self.rauta
            .iter()
            .zip(&self.nginx)
            .filter_map(|(a, b)| Some(b.cpu_us? / a.cpu_us?.max(1e-9)))
            .collect()
    }
}

/// The round whose requests/s is the median (its latencies and CPU belong to the same run).
fn median_numbers(rounds: &[Numbers]) -> Numbers {
    let mut sorted = rounds.to_vec();
    sorted.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// The scenarios (`--https-scenario`), in the order they run within a round.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// HTTPS HTTP/1.1 keep-alive (wrk).
    Http1,
    /// The same with each proxy held to [`CAPPED`] of a core while it is measured, so that the proxy and
    /// not the client's core is the limit.
    Http1Capped,
    /// The same as `http1` with the proxy's core kept from going idle for both proxies (a busy loop at
    /// the lowest scheduling class, `SCHED_IDLE`, on that core during each turn): in a VM an idle virtual
    /// core halts, and waking it again costs the host's scheduling latency, which a proxy that leaves its
    /// core partly idle pays on many requests and a saturated one never does.
    Http1Awake,
    /// HTTP/2 over TLS (h2load).
    Http2,
    /// A new TLS connection per request (wrk with `Connection: close`).
    Handshakes,
}

const ALL_SCENARIOS: [Scenario; 5] = [
    Scenario::Http1,
    Scenario::Http1Capped,
    Scenario::Http1Awake,
    Scenario::Http2,
    Scenario::Handshakes,
];

/// The CPU budget of the capped scenario: half a core in 2 ms periods. Short periods keep a throttled
/// proxy's pauses short (about a millisecond), so the cap costs little latency; the kernel accepts no quota
/// below 1 ms, so 2 ms is the shortest period for a half.
const CAPPED: Budget = Budget {
    quota_us: 1000,
    period_us: 2000,
};

/// Both proxies, scenario by scenario.
#[derive(Default)]
struct Results {
    h1: Compared,
    h1_capped: Compared,
    h1_awake: Compared,
    h2: Compared,
    handshakes: Compared,
}

/// Run the HTTPS benchmarks; returns the Markdown section for the summary.
pub fn bench(args: &BenchArgs, rauta: &Path, nginx: &Path, out: &Path) -> Result<String> {
    if !on_path("h2load") {
        bail!("h2load not found; run cargo xtask setup (installs nghttp2-client)");
    }
    let pin = pinning();
    println!("  pinning: {}", pin.note);
    // Other work on the machine skews every number here; record how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_owned();
    println!("  load average before the runs: {load}");
    let dir = out.join("https");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    certificate(&dir)?;

    let backend: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let _backend = start_nginx(
        nginx,
        "nginx-backend.conf",
        &out.join("nginx-backend-https"),
        backend,
        None,
        &pin.backend,
    )?;

    let (rauta_proxy, rauta_addr) = {
        let manifests_dir = dir.join("manifests");
        manifests::write(&manifests_dir, &backend.to_string(), 0, true)?;
        let mut c = pinned(&pin.proxy, rauta);
        c.args(["run", "--manifests"])
            .arg(&manifests_dir)
            .arg("--default-certificate")
            .arg(dir.join("secret.yaml"))
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(["--https-listen", "127.0.0.1:0", "--workers", "1"])
            // wrk sends the address as SNI, which rustls logs a warning about at every handshake: noise
            // (and work) that nginx does not do, so RAUTA logs errors only here.
            .args(["--kernel-tiers", "off", "--log-level", "error"])
            .arg("--print-listen-addrs")
            .stdout(Stdio::piped());
        let mut g = Guard::spawn("rauta (https)", &mut c)?;
        let line = g.wait_for_line("listening", Duration::from_secs(15))?;
        let (_, admin) = parse_listen_line(&line)?;
        let https = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("https="))
            .with_context(|| format!("no https= in `{line}`"))?
            .to_owned();
        wait_ready(&admin, Duration::from_secs(10), &mut g)?;
        (g, https)
    };

    // Both proxies run for the whole comparison, pinned to the same core; the one not measured is idle.
    let (nginx_proxy, nginx_addr) = {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(&prefix)?;
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&prefix, &dir, listen, backend))?;
        let mut c = pinned(&pin.proxy, nginx);
        c.arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdout(Stdio::null());
        let mut g = Guard::spawn("nginx (https)", &mut c)?;
        wait_port(listen, &mut g)
            .with_context(|| format!("see {}", prefix.join("error.log").display()))?;
        (g, listen.to_string())
    };
    check_serves(&format!("https://{rauta_addr}/"))?;
    check_serves(&format!("https://{nginx_addr}/"))?;

    // Rounds of every scenario against both proxies back to back, the order swapped every round: a ratio
    // is taken within a round, so that the machine's slow and fast moments hit both sides of it.
    let scenarios: Vec<Scenario> = ALL_SCENARIOS
        .into_iter()
        .filter(|s| args.https_scenario.is_empty() || args.https_scenario.contains(s))
        .filter(|s| {
            // Unpinned (one core), there is no proxy core of its own to keep awake.
            let runs = *s != Scenario::Http1Awake || pin.proxy.is_some();
            if !runs {
                println!("  skipped http1-awake: the proxy is not pinned to a core of its own");
            }
            runs
        })
        .collect();
    let mut results = Results::default();
    for round in 1..=args.rounds {
        println!("  round {round} of {}", args.rounds);
        for &scenario in &scenarios {
            let rauta_first = round % 2 == 1;
            for rauta_turn in [rauta_first, !rauta_first] {
                let (label, addr, pid) = if rauta_turn {
                    ("RAUTA", &rauta_addr, rauta_proxy.pid())
                } else {
                    ("nginx", &nginx_addr, nginx_proxy.pid())
                };
                let n = measure_scenario(scenario, label, addr, args, &pin, pid)?;
                let compared = match scenario {
                    Scenario::Http1 => &mut results.h1,
                    Scenario::Http1Capped => &mut results.h1_capped,
                    Scenario::Http1Awake => &mut results.h1_awake,
                    Scenario::Http2 => &mut results.h2,
                    Scenario::Handshakes => &mut results.handshakes,
                };
                if rauta_turn {
                    compared.rauta.push(n);
                } else {
                    compared.nginx.push(n);
                }
            }
        }
    }
    drop(rauta_proxy);
    drop(nginx_proxy);

    Ok(markdown(&results, args, &pin, &load))
}

/// A demo-style CA-less self-signed ECDSA P-256 certificate for `bench.example` (key and certificate PEM
/// files, and the same as a `kubernetes.io/tls` Secret for `--default-certificate`).
fn certificate(dir: &Path) -> Result<()> {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=bench.example"])
        .args(["-addext", "subjectAltName=DNS:bench.example"])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir)
        .output()
        .context("cannot run openssl (cargo xtask setup installs it)")?;
    if !out.status.success() {
        bail!("openssl req: {}", String::from_utf8_lossy(&out.stderr));
    }
    let indent = |file: &str| -> Result<String> {
        Ok(std::fs::read_to_string(dir.join(file))?
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect())
    };
    std::fs::write(
        dir.join("secret.yaml"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bench-tls\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
            indent("cert.pem")?,
            indent("key.pem")?
        ),
    )?;
    Ok(())
}

/// nginx as a TLS-terminating proxy doing what bench/nginx-proxy.conf does over plain HTTP.
fn nginx_conf(prefix: &Path, certs: &Path, listen: SocketAddr, backend: SocketAddr) -> String {
    let root = output(Command::new("id").arg("-u"))
        .map(|u| u.trim() == "0")
        .unwrap_or(false);
    let p = prefix.display();
    let c = certs.display();
    format!(
        "{user}\nworker_processes 1;\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/client_body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  keepalive_requests 1000000;\n\
         \x20 upstream backend {{ server {backend}; keepalive 64; keepalive_requests 1000000; }}\n\
         \x20 server {{\n    listen {listen} ssl http2 backlog=4096;\n    ssl_certificate {c}/cert.pem;\n    ssl_certificate_key {c}/key.pem;\n    ssl_protocols TLSv1.2 TLSv1.3;\n\
         \x20   location / {{\n      proxy_pass http://backend;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      proxy_set_header X-Real-IP $remote_addr;\n      proxy_set_header X-Forwarded-Proto $scheme;\n      proxy_set_header X-Forwarded-Host $http_host;\n    }}\n  }}\n}}\n",
        user = if root { "user root;" } else { "" },
    )
}

/// One scenario against one proxy's TLS listener `addr` (pid: the proxy, for its CPU time).
fn measure_scenario(
    scenario: Scenario,
    label: &str,
    addr: &str,
    args: &BenchArgs,
    pin: &Pinning,
    pid: u32,
) -> Result<Numbers> {
    let url = format!("https://{addr}/");
    // The keep-alive scenarios, capped or not: a 1 s warm-up, then the measured run.
    let keep_alive = || {
        wrk_tls(&url, args.connections, 1, &[], pin)?;
        Ok(from_wrk(&wrk_tls(
            &url,
            args.connections,
            args.duration,
            &[],
            pin,
        )?))
    };
    let (what, n) = match scenario {
        Scenario::Http1Capped => {
            // Created per measurement and removed right after it (`Drop`, on errors too), so that no other
            // scenario runs capped and no cgroup outlives the run.
            let cap = CpuCap::create(&format!("rauta-bench-{}", std::process::id()), CAPPED)?;
            cap.add_tree(pid)
                .with_context(|| format!("cannot move {label} into {}", cap.path().display()))?;
            let before = cap.throttled_periods();
            let n = timed(pid, keep_alive)?;
            if let (Some(before), Some(after)) = (before, cap.throttled_periods()) {
                // Throttled in most periods means the cap, not the client, was the limit.
                println!(
                    "  {label:<6} throttled in {} periods of {} us",
                    after - before,
                    CAPPED.period_us
                );
            }
            ("HTTPS HTTP/1.1, proxy capped", n)
        }
        Scenario::Http1 => ("HTTPS HTTP/1.1 keep-alive", timed(pid, keep_alive)?),
        Scenario::Http1Awake => {
            let awake = KeepAwake::start(pin.proxy.as_deref())?;
            println!("  {label:<6} core kept awake by pid {}", awake.pid());
            ("HTTPS HTTP/1.1, core kept awake", timed(pid, keep_alive)?)
        }
        Scenario::Http2 => (
            "HTTP/2 (h2load)",
            timed(pid, || h2load(&url, args.duration, pin))?,
        ),
        Scenario::Handshakes => (
            "new TLS connection per request",
            timed(pid, || {
                let close = ["-H", "Connection: close"];
                wrk_tls(&url, args.connections, 1, &close, pin)?;
                Ok(from_wrk(&wrk_tls(
                    &url,
                    args.connections,
                    args.duration,
                    &close,
                    pin,
                )?))
            })?,
        ),
    };
    print_line(label, what, &n);
    Ok(n)
}

fn print_line(label: &str, what: &str, n: &Numbers) {
    let cpu = n
        .cpu_us
        .map_or(String::new(), |us| format!("   CPU {us:>6.1} us/req"));
    let wait = n.wait_us.map_or(String::new(), |us| {
        format!("   run-queue wait {us:>6.1} us/wake-up")
    });
    println!(
        "  {label:<6} {what:<32} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   errors {}{cpu}{wait}",
        n.rps, n.p50_ms, n.p99_ms, n.errors
    );
}

/// Run `f` and add the proxy's CPU time per request over it. The warm-up `f` runs first is in both the CPU
/// time and (as requests at the measured rate) the request count: an approximation, close for 10 s runs.
fn timed(pid: u32, f: impl FnOnce() -> Result<Numbers>) -> Result<Numbers> {
    let before = cpu_ticks(pid);
    let sched_before = Sched::of_tree(pid);
    let started = std::time::Instant::now();
    let mut n = f()?;
    if let (Some(a), Some(b)) = (sched_before, Sched::of_tree(pid)) {
        n.wait_us = b.since(&a).wait_per_slice_us();
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let (Some(before), Some(after)) = (before, cpu_ticks(pid)) {
        let requests = n.rps * elapsed;
        if requests > 0.0 {
            n.cpu_us =
                Some((after - before) as f64 * 1e6 / super::clock_ticks_per_second() / requests);
        }
    }
    Ok(n)
}

/// A busy loop in the `SCHED_IDLE` class pinned to the proxy's core while it lives: it runs only when
/// nothing else on that core wants to (a woken proxy preempts it at once), so the core never halts. Started
/// the same way for both proxies' turns.
struct KeepAwake(Guard);

impl KeepAwake {
    fn start(cpus: Option<&str>) -> Result<KeepAwake> {
        let Some(cpus) = cpus else {
            bail!("keeping the proxy's core awake needs the proxy pinned (2 or more cores)");
        };
        let mut c = Command::new("chrt");
        c.args(["--idle", "0", "taskset", "-c", cpus, "sh", "-c"])
            .arg("while :; do :; done")
            .stdout(Stdio::null());
        Ok(KeepAwake(Guard::spawn("busy loop (SCHED_IDLE)", &mut c)?))
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }
}

/// The scheduler's account of a process tree's threads (`/proc/PID/task/TID/schedstat`, summed): time on a
/// CPU, time runnable but waiting for one, and time slices run. The wait includes what a guest cannot see
/// as its own work: when the proxy's core is idle, a woken thread waits until that (virtual) core is back
/// from its halt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sched {
    run_ns: u64,
    wait_ns: u64,
    slices: u64,
}

impl Sched {
    /// Every thread of `pid` and of its children (nginx's workers); `None` when `pid` is gone or the
    /// kernel keeps no schedstats.
    fn of_tree(pid: u32) -> Option<Sched> {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let mut total = Self::of_process(&pid.to_string())?;
        for child in children.split_whitespace() {
            total = total.plus(&Self::of_process(child).unwrap_or_default());
        }
        Some(total)
    }

    fn of_process(pid: &str) -> Option<Sched> {
        let mut total = Sched::default();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            // A thread that ended between the listing and the read counts as nothing.
            let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            total = total.plus(&Self::parse(&text)?);
        }
        Some(total)
    }

    fn parse(text: &str) -> Option<Sched> {
        let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
        Some(Sched {
            run_ns: fields.next()??,
            wait_ns: fields.next()??,
            slices: fields.next()??,
        })
    }

    fn plus(&self, other: &Sched) -> Sched {
        Sched {
            run_ns: self.run_ns + other.run_ns,
            wait_ns: self.wait_ns + other.wait_ns,
            slices: self.slices + other.slices,
        }
    }

    fn since(&self, earlier: &Sched) -> Sched {
        Sched {
            run_ns: self.run_ns.saturating_sub(earlier.run_ns),
            wait_ns: self.wait_ns.saturating_sub(earlier.wait_ns),
            slices: self.slices.saturating_sub(earlier.slices),
        }
    }

    fn wait_per_slice_us(&self) -> Option<f64> {
        (self.slices > 0).then(|| self.wait_ns as f64 / 1e3 / self.slices as f64)
    }
}

fn from_wrk(w: &WrkResult) -> Numbers {
    Numbers {
        rps: w.rps,
        p50_ms: w.p50_ms,
        p99_ms: w.p99_ms,
        errors: w.errors,
        cpu_us: None,
        wait_us: None,
    }
}

/// One HTTPS GET must answer the backend's `ok` before anything is measured.
fn check_serves(url: &str) -> Result<()> {
    let body = output(Command::new("curl").args(["-sSk", "--fail", "--max-time", "5", url]))?;
    if body.trim() != "ok" {
        bail!("{url} answered {body:?}, expected the backend's `ok`");
    }
    Ok(())
}

/// wrk over TLS with `extra` flags.
fn wrk_tls(
    url: &str,
    connections: u32,
    seconds: u32,
    extra: &[&str],
    pin: &Pinning,
) -> Result<WrkResult> {
    let mut c = match &pin.wrk {
        Some(list) => {
            let mut c = Command::new("taskset");
            c.args(["-c", list, "wrk"]);
            c
        }
        None => Command::new("wrk"),
    };
    c.args(["--latency", "-t", "1", "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s")])
        .args(extra)
        .arg(url);
    let out = cmd::output(&mut c)?;
    wrk::parse(&out).with_context(|| format!("cannot read wrk's report:\n{out}"))
}

/// h2load for `seconds` (after a 1 s warm-up) with [`H2_CONNECTIONS`] connections of [`H2_STREAMS`]
/// streams; p50/p99 from its per-request log.
fn h2load(url: &str, seconds: u32, pin: &Pinning) -> Result<Numbers> {
    let dir = tempdir()?;
    let log = dir.join("h2load.log");
    let mut c = match &pin.wrk {
        Some(list) => {
            let mut c = Command::new("taskset");
            c.args(["-c", list, "h2load"]);
            c
        }
        None => Command::new("h2load"),
    };
    c.args([
        "-c",
        &H2_CONNECTIONS.to_string(),
        "-m",
        &H2_STREAMS.to_string(),
    ])
    .args(["--warm-up-time", "1", "-D", &seconds.to_string()])
    .arg(format!("--log-file={}", log.display()))
    .arg(url);
    let out = cmd::output(&mut c)?;
    let mut n = Numbers::default();
    for line in out.lines().map(str::trim) {
        // "finished in 10.00s, 12345.60 req/s, 1.23MB/s"
        if let Some(rest) = line.strip_prefix("finished in ") {
            n.rps = rest
                .split(", ")
                .nth(1)
                .and_then(|s| s.strip_suffix(" req/s"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0);
        }
        // "requests: 1000 total, 1000 started, 1000 done, 1000 succeeded, 0 failed, 0 errored, 0 timeout"
        if let Some(rest) = line.strip_prefix("requests: ") {
            n.errors = rest
                .split(", ")
                .filter(|p| p.ends_with(" failed") || p.ends_with(" errored"))
                .filter_map(|p| p.split_whitespace().next()?.parse::<u64>().ok())
                .sum();
        }
    }
    if n.rps == 0.0 {
        bail!("cannot read h2load's report:\n{out}");
    }
    // Log lines: start time (µs since epoch), status, duration (µs).
    let mut durations: Vec<u64> = std::fs::read_to_string(&log)?
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    durations.sort_unstable();
    let pct = |p: f64| -> f64 {
        if durations.is_empty() {
            return 0.0;
        }
        let i = ((durations.len() as f64 * p).ceil() as usize).clamp(1, durations.len()) - 1;
        durations[i] as f64 / 1000.0
    };
    n.p50_ms = pct(0.50);
    n.p99_ms = pct(0.99);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(n)
}

fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("rauta-bench-h2load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn markdown(r: &Results, args: &BenchArgs, pin: &Pinning, load: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Tier 3 over TLS: HTTPS, HTTP/2 and handshakes, RAUTA vs nginx\n\n\
         Same ECDSA P-256 certificate, one worker each, same `return 200` nginx backend; {}. wrk: {} \
         connections, {} s (after 1 s warm-up); h2load: {H2_CONNECTIONS} connections x {H2_STREAMS} \
         streams, {} s. Load average before the runs: {load}. {} rounds of every scenario against both \
         proxies back to back (order swapped each round); the ratios are the median of the rounds' ratios, \
         the other columns the median round by req/s.\n",
        pin.note, args.connections, args.duration, args.duration, args.rounds
    );
    let _ = writeln!(
        md,
        "| Scenario | RAUTA req/s | nginx req/s | ratio | p99 ratio | per round (req/s; p99) | RAUTA p50 / p99 ms | nginx p50 / p99 ms | RAUTA / nginx CPU us/req | target |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    let row = |md: &mut String, name: &str, c: &Compared, p99_too: bool| {
        if c.rauta.is_empty() {
            return;
        }
        let (a, b) = (median_numbers(&c.rauta), median_numbers(&c.nginx));
        let (ratios, p99_ratios) = c.ratios();
        let (ratio, p99_ratio) = (super::median(&ratios), super::median(&p99_ratios));
        let cpu = |n: Numbers| n.cpu_us.map_or("-".to_owned(), |c| format!("{c:.1}"));
        let met = ratio >= 1.0 && (!p99_too || p99_ratio <= 1.0);
        let target = if p99_too {
            ">= nginx req/s, p99 <= nginx"
        } else {
            ">= nginx handshakes/s (wall clock, bounded by wrk's core; per core below)"
        };
        let errors = if a.errors + b.errors > 0 {
            format!(" (errors: {} / {})", a.errors, b.errors)
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {name}{errors} | {:.0} | {:.0} | {ratio:.2}x | {p99_ratio:.2}x | {}; {} | {:.3} / {:.3} | {:.3} / {:.3} | {} / {} | {target}: {} |",
            a.rps,
            b.rps,
            super::ratio_list(&ratios),
            super::ratio_list(&p99_ratios),
            a.p50_ms,
            a.p99_ms,
            b.p50_ms,
            b.p99_ms,
            cpu(a),
            cpu(b),
            if met { "met" } else { "missed" }
        );
    };
    row(&mut md, "HTTPS HTTP/1.1 keep-alive", &r.h1, true);
    row(
        &mut md,
        &format!(
            "HTTPS HTTP/1.1 keep-alive, each proxy capped at {:.0} % of core 0 (cgroup, {} us period)",
            CAPPED.percent(),
            CAPPED.period_us
        ),
        &r.h1_capped,
        true,
    );
    row(
        &mut md,
        "HTTPS HTTP/1.1 keep-alive, the proxy's core kept from idling (a SCHED_IDLE busy loop on it)",
        &r.h1_awake,
        true,
    );
    row(&mut md, "HTTP/2 over TLS (h2load)", &r.h2, true);
    row(
        &mut md,
        "New TLS handshake per request",
        &r.handshakes,
        false,
    );
    // A p99 that jumps in one round: whether the proxy was slow or waited to be scheduled shows in its
    // run-queue wait per wake-up next to it.
    for (name, c) in [
        ("HTTPS HTTP/1.1 keep-alive", &r.h1),
        ("HTTPS HTTP/1.1, core kept awake", &r.h1_awake),
    ] {
        if c.rauta.is_empty() {
            continue;
        }
        let wait = |n: &Numbers| n.wait_us.map_or("-".to_owned(), |w| format!("{w:.0}"));
        let rounds: Vec<String> = c
            .rauta
            .iter()
            .zip(&c.nginx)
            .map(|(a, b)| {
                format!(
                    "{:.2} / {:.2} ms ({} / {} us)",
                    a.p99_ms,
                    b.p99_ms,
                    wait(a),
                    wait(b)
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "
{name}, p99 RAUTA / nginx per round (the proxy's run-queue wait per wake-up): {}.",
            rounds.join("; ")
        );
    }
    // wrk's core does a full client handshake per request and is the limit of the wall-clock rate (the
    // proxy's core is not saturated), so the "handshakes per second per core" is the proxy's CPU
    // per handshake: how many one core of it would do.
    let per_core = r.handshakes.per_core_ratios();
    if !per_core.is_empty() {
        let ratio = super::median(&per_core);
        let cpu = |rounds: &[Numbers]| {
            super::median(&rounds.iter().filter_map(|n| n.cpu_us).collect::<Vec<_>>())
        };
        let (a, b) = (cpu(&r.handshakes.rauta), cpu(&r.handshakes.nginx));
        let _ = writeln!(
            md,
            "\nNew TLS handshakes per core (1 s of proxy CPU / CPU per handshake, median rounds): RAUTA \
             {:.0}, nginx {:.0}: **{ratio:.2}x** (per round: {}; target >= nginx per core: {}). The \
             wall-clock rate above is bounded by wrk's core, which does a client handshake per request.",
            1e6 / a.max(1e-9),
            1e6 / b.max(1e-9),
            super::ratio_list(&per_core),
            if ratio >= 1.0 { "met" } else { "missed" }
        );
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy field of `/proc/PID/stat` (41st) and the CPUs the process may run on.
    fn policy_and_cpus(pid: u32) -> (String, String) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let policy = rest.split_whitespace().nth(38).unwrap().to_owned();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_owned();
        (policy, cpus)
    }

    /// The keep-awake loop runs in the idle class on the given core, and is gone once dropped.
    #[test]
    fn the_keep_awake_loop_is_idle_class_on_the_proxy_core_and_ends_with_its_guard() {
        let awake = KeepAwake::start(Some("0")).unwrap();
        let pid = awake.pid();
        // chrt and taskset exec what they start: wait until the loop itself runs under that pid.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .starts_with("sh")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the loop did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // 5 is SCHED_IDLE.
        assert_eq!(policy_and_cpus(pid), ("5".to_owned(), "0".to_owned()));
        drop(awake);
        assert!(std::fs::read_to_string(format!("/proc/{pid}/stat")).is_err());
    }

    /// Two busy loops sharing one core each wait for it about as long as they run, and the harness's
    /// account says so; one process alone on a core it does not share waits far less than it runs.
    #[test]
    fn run_queue_wait_shows_a_process_that_shares_its_core() {
        let spin = |cpu: &str| {
            Command::new("taskset")
                .args(["-c", cpu, "sh", "-c", "while :; do :; done"])
                .spawn()
                .unwrap()
        };
        let mut a = spin("0");
        let mut b = spin("0");
        let before = Sched::of_tree(a.id()).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let shared = Sched::of_tree(a.id()).unwrap().since(&before);
        let _ = b.kill();
        let _ = b.wait();
        let before = Sched::of_tree(a.id()).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let alone = Sched::of_tree(a.id()).unwrap().since(&before);
        let _ = a.kill();
        let _ = a.wait();
        assert!(shared.run_ns > 0 && shared.slices > 0, "{shared:?}");
        // Other work on the machine may share core 0 too; the loop it shares with on purpose makes the
        // wait at least a third of the run.
        assert!(shared.wait_ns * 3 > shared.run_ns, "{shared:?}");
        assert!(
            alone.wait_ns * 1000 / alone.run_ns.max(1)
                < shared.wait_ns * 1000 / shared.run_ns.max(1),
            "alone {alone:?}, shared {shared:?}"
        );
    }

    #[test]
    fn schedstat_lines_parse_and_bad_ones_do_not() {
        assert_eq!(
            Sched::parse("123 45 6\n"),
            Some(Sched {
                run_ns: 123,
                wait_ns: 45,
                slices: 6
            })
        );
        assert_eq!(Sched::parse("12 x 6"), None);
        assert_eq!(Sched::parse(""), None);
    }
}
