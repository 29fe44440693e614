//! `cargo xtask bench`: the numbers in docs/benchmarks.md, reproducible with one command in a few minutes.
//!
//! 1. Route lookup: `cargo bench -p rauta-routes` (criterion), shortened measurement times.
//! 2. Tier 3, HTTP/1.1 keep-alive on loopback, wrk against: the backend directly, RAUTA (`--workers 1`),
//!    nginx (`worker_processes 1`, pooled upstream keep-alive, the same forwarding headers as RAUTA), and
//!    nginx without those headers (less work than RAUTA, the earlier baseline). The backend is the same for all three: an
//!    nginx answering `return 200` (bench/nginx-backend.conf), the cheapest backend available, so the
//!    comparison is about the proxies. With 2+ cores the proxy under test gets core 0 to itself and wrk and
//!    the backend share the other core(s).
//! 3. Memory: RSS of an idle `rauta run` with 0, 1,000, 5,000 and 10,000 generated Ingress paths.
//! - Tier 3 over TLS (`https`): HTTPS HTTP/1.1 and HTTP/2 requests/s and TLS handshakes/s, RAUTA vs nginx.
//! 4. With `--kernel` (root): Tier 1 in the kernel against direct forwarding, Tier 3 and nginx in a
//!    network-namespace topology, BPF_PROG_RUN costs, and the chart docs/kernel-bench.svg (see `kernel`).
//!
//! Results go to stdout and target/bench/summary.md.

mod chart;
mod cpu_cap;
mod https;
mod kernel;
mod manifests;
mod wrk;

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd::{self, cargo, on_path, output, repo_root, target_dir};
use crate::demo::{parse_listen_line, wait_ready};
use crate::procs::Guard;
use crate::setup::{self, SetupArgs};
use wrk::WrkResult;

/// Flags of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Seconds per wrk measurement (each is preceded by a 1 s warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration: u32,
    /// Concurrent keep-alive connections wrk opens.
    #[arg(long, default_value_t = 50)]
    pub connections: u32,
    /// Skip the criterion route-lookup benchmarks.
    #[arg(long)]
    pub no_criterion: bool,
    /// Skip the memory measurements.
    #[arg(long)]
    pub no_memory: bool,
    /// Also benchmark the kernel tiers in network namespaces (needs root; skipped with a message
    /// otherwise).
    #[arg(long)]
    pub kernel: bool,
    /// How many rounds of the compared targets in turn (RAUTA and nginx; in the kernel benchmark direct,
    /// Tier 1, Tier 3 and nginx): ratios are taken within a round and their median reported, so that a
    /// slow moment of the machine hits both sides of a ratio.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// Run only these parts (repeatable or comma-separated), e.g. `--only https` for the TLS comparison
    /// alone; every part by default (`kernel` still needs `--kernel`-style root privileges).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Part>,
    /// Within the HTTPS part, run only these scenarios (repeatable or comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub https_scenario: Vec<https::Scenario>,
}

/// The parts of the benchmark, for `--only`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The criterion route-lookup benchmarks.
    Criterion,
    /// Tier 3 over plain HTTP/1.1, RAUTA vs nginx.
    Http,
    /// Tier 3 over TLS, RAUTA vs nginx.
    Https,
    /// The kernel tiers in network namespaces (implies `--kernel`).
    Kernel,
    /// Idle memory by number of routes.
    Memory,
}

impl BenchArgs {
    /// Whether `part` is to run: named by `--only`, or every part when `--only` is absent (with the
    /// older `--no-…`/`--kernel` flags deciding as before).
    fn runs(&self, part: Part) -> bool {
        if !self.only.is_empty() {
            return self.only.contains(&part);
        }
        match part {
            Part::Criterion => !self.no_criterion,
            Part::Memory => !self.no_memory,
            Part::Kernel => self.kernel,
            Part::Http | Part::Https => true,
        }
    }
}

/// Route counts of the memory benchmark.
const MEMORY_PATHS: &[usize] = &[0, 1_000, 5_000, 10_000];

/// Runs the benchmarks.
pub fn run(args: &BenchArgs) -> Result<()> {
    setup::run(&SetupArgs::default())
        .context("setup failed; the benchmarks need nginx, wrk and curl")?;
    for tool in ["wrk", "curl"] {
        if !on_path(tool) {
            bail!("{tool} not found; run cargo xtask setup");
        }
    }
    let nginx = find_nginx()?;

    println!("\n==> building rauta and rauta-echo (release)");
    cmd::run(cargo().args([
        "build",
        "--release",
        "-p",
        "rauta",
        "-p",
        "rauta-testkit",
        "--bins",
    ]))?;
    let rauta = target_dir().join("release").join("rauta");
    let started = Instant::now();
    let out_dir = target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)?;

    let mut md = String::new();
    let _ = writeln!(md, "# RAUTA benchmark summary\n\n{}\n", machine());
    println!("\n{}", machine());

    if args.runs(Part::Criterion) {
        println!("\n==> route lookup (criterion, cargo bench -p rauta-routes)");
        let lines = criterion()?;
        let _ = writeln!(md, "## Route lookup (criterion)\n\n```");
        for l in &lines {
            let _ = writeln!(md, "{l}");
        }
        let _ = writeln!(md, "```\n");
    }

    if args.runs(Part::Http) {
        println!("\n==> Tier 3: HTTP/1.1 keep-alive through RAUTA and nginx (wrk)");
        let http = http_bench(args, &rauta, &nginx, &out_dir)?;
        md.push_str(&http);
    }

    if args.runs(Part::Https) {
        println!(
            "\n==> Tier 3 over TLS: HTTPS HTTP/1.1, HTTP/2 and new handshakes through RAUTA and nginx"
        );
        md.push_str(&https::bench(args, &rauta, &nginx, &out_dir)?);
    }

    if args.runs(Part::Kernel) {
        println!(
            "\n==> kernel tiers: direct, Tier 1, Tier 3 and nginx through a namespace topology"
        );
        md.push_str(&kernel::run(args, &rauta, &nginx, &out_dir)?);
    }

    if args.runs(Part::Memory) {
        println!("\n==> memory: idle RSS of rauta run by number of Ingress paths");
        let mem = memory_bench(&rauta, &out_dir)?;
        md.push_str(&mem);
    }

    let _ = writeln!(
        md,
        "Bench time after the release build (criterion's own build included): {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let summary = out_dir.join("summary.md");
    std::fs::write(&summary, &md)?;
    println!("\nwrote {}", summary.display());
    Ok(())
}

fn find_nginx() -> Result<PathBuf> {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .or_else(|| on_path("nginx").then(|| PathBuf::from("nginx")))
    .context("nginx not found; run cargo xtask setup (installs nginx-light)")
}

/// CPU model, core count, kernel, commit.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = output(Command::new("uname").arg("-r")).unwrap_or_default();
    let rev = output(Command::new("git").args([
        "-C",
        &repo_root().to_string_lossy(),
        "rev-parse",
        "--short",
        "HEAD",
    ]))
    .unwrap_or_default();
    format!(
        "Machine: {cpu}, {} cores, Linux {}; commit {}",
        cores(),
        kernel.trim(),
        rev.trim()
    )
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Runs the criterion benchmarks of rauta-routes and returns the "name  time: [...]" lines.
fn criterion() -> Result<Vec<String>> {
    let out = output(cargo().args([
        "bench",
        "-p",
        "rauta-routes",
        // Only bench targets (benches/*.rs, criterion): the lib is also a bench target by default, and its
        // libtest harness rejects criterion's flags.
        "--bench",
        "*",
        "--",
        "--warm-up-time",
        "1",
        "--measurement-time",
        "3",
        "--noplot",
    ]))?;
    let mut lines = Vec::new();
    let mut last_name = String::new();
    for line in out.lines() {
        let t = line.trim();
        if let Some(pos) = t.find("time:") {
            let name = t[..pos].trim();
            let name = if name.is_empty() {
                last_name.as_str()
            } else {
                name
            };
            let l = format!("{name:<40} {}", &t[pos..]);
            println!("  {l}");
            lines.push(l);
        } else if !t.is_empty() && !t.starts_with("Benchmarking") && !t.contains(':') {
            last_name = t.to_owned();
        }
    }
    if lines.is_empty() {
        println!("  (no criterion results found in the output)");
    }
    Ok(lines)
}

/// Core assignment: the proxy under test alone on core 0, wrk and the backend on the others.
struct Pinning {
    proxy: Option<String>,
    backend: Option<String>,
    wrk: Option<String>,
    note: String,
}

fn pinning() -> Pinning {
    let n = cores();
    match n {
        0 | 1 => Pinning {
            proxy: None,
            backend: None,
            wrk: None,
            note: "1 core: no pinning".into(),
        },
        2 => Pinning {
            proxy: Some("0".into()),
            backend: Some("1".into()),
            wrk: Some("1".into()),
            note: "proxy on core 0; wrk and backend share core 1".into(),
        },
        _ => Pinning {
            proxy: Some("0".into()),
            backend: Some("1".into()),
            wrk: Some(format!("2-{}", n - 1)),
            note: format!(
                "proxy on core 0; backend on core 1; wrk on cores 2-{}",
                n - 1
            ),
        },
    }
}

fn pinned(cpus: &Option<String>, program: &Path) -> Command {
    match cpus {
        Some(list) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(list).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A free loopback port (bound and released; nginx cannot report a port-0 bind back to us).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(addr: SocketAddr, guard: &mut Guard) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        guard.check_alive()?;
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Starts nginx from one of the templates in bench/.
fn start_nginx(
    nginx: &Path,
    template: &str,
    prefix: &Path,
    listen: SocketAddr,
    backend: Option<SocketAddr>,
    cpus: &Option<String>,
) -> Result<Guard> {
    let text = std::fs::read_to_string(repo_root().join("bench").join(template))
        .with_context(|| format!("cannot read bench/{template}"))?;
    let _ = std::fs::remove_dir_all(prefix);
    std::fs::create_dir_all(prefix)?;
    let root = output(Command::new("id").arg("-u"))
        .map(|u| u.trim() == "0")
        .unwrap_or(false);
    let conf = text
        .replace("@PREFIX@", &prefix.to_string_lossy())
        // As root, nginx would run workers as `nobody`, who may not reach our prefix directory.
        .replace("@USER@", if root { "user root;" } else { "" })
        .replace("@LISTEN@", &listen.to_string())
        .replace(
            "@BACKEND@",
            &backend.map(|b| b.to_string()).unwrap_or_default(),
        );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let mut c = pinned(cpus, nginx);
    c.arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(prefix.join("error.log"));
    let mut g = Guard::spawn(format!("nginx ({template})"), c.stdout(Stdio::null()))?;
    wait_port(listen, &mut g)
        .with_context(|| format!("see {}", prefix.join("error.log").display()))?;
    Ok(g)
}

/// One GET must answer 200 `ok` before we measure, or the numbers would be for error pages.
fn check_serves(url: &str) -> Result<()> {
    let body = output(Command::new("curl").args([
        "-sS",
        "--fail",
        "--max-time",
        "5",
        "-H",
        "Host: bench.example",
        url,
    ]))?;
    if body.trim() != "ok" {
        bail!("{url} answered {body:?}, expected the backend's `ok`");
    }
    Ok(())
}

/// One measured target: wrk's numbers and, when the proxy's pid is known, its CPU time per request.
struct Measured {
    wrk: WrkResult,
    /// Process CPU time (user + system, the process and its children) per request in microseconds.
    /// With the proxy alone on its core this is what bounds its throughput, and it depends much less on
    /// other work on the machine than requests/s.
    cpu_us_per_req: Option<f64>,
}

fn measure(
    label: &str,
    url: &str,
    args: &BenchArgs,
    pin: &Pinning,
    pid: Option<u32>,
) -> Result<Measured> {
    check_serves(url)?;
    // Warm-up: connections, pools and caches; its numbers are discarded.
    wrk::run(url, 1, args.connections, 1, pin.wrk.as_deref())?;
    let before = pid.and_then(cpu_ticks);
    let r = wrk::run(url, 1, args.connections, args.duration, pin.wrk.as_deref())?;
    let cpu_us_per_req = match (before, pid.and_then(cpu_ticks)) {
        (Some(before), Some(after)) if r.requests > 0 => {
            Some((after - before) as f64 * 1e6 / clock_ticks_per_second() / r.requests as f64)
        }
        _ => None,
    };
    let cpu = cpu_us_per_req.map_or(String::new(), |us| format!("   CPU {us:>5.1} us/req"));
    println!(
        "  {label:<28} {:>10.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   errors {}{cpu}",
        r.rps, r.p50_ms, r.p99_ms, r.errors
    );
    Ok(Measured {
        wrk: r,
        cpu_us_per_req,
    })
}

/// User + system CPU ticks of `pid` and its direct children (nginx's worker is a child of its master).
fn cpu_ticks(pid: u32) -> Option<u64> {
    fn own(pid: &str) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name, which may contain spaces: state is field 3, utime 14,
        // stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    }
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let mut total = own(&pid.to_string())?;
    for child in children.split_whitespace() {
        total += own(child).unwrap_or(0);
    }
    Some(total)
}

fn clock_ticks_per_second() -> f64 {
    output(Command::new("getconf").arg("CLK_TCK"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(100.0)
}

fn http_bench(args: &BenchArgs, rauta: &Path, nginx: &Path, out: &Path) -> Result<String> {
    let pin = pinning();
    println!("  pinning: {}", pin.note);
    // Other work on the machine skews every number here; record how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load1 = load.split_whitespace().next().unwrap_or("?").to_owned();
    println!(
        "  load average before the runs: {load1} (on {} cores)",
        cores()
    );
    let backend_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let _backend = start_nginx(
        nginx,
        "nginx-backend.conf",
        &out.join("nginx-backend"),
        backend_addr,
        None,
        &pin.backend,
    )?;

    let direct = measure(
        "direct to backend",
        &format!("http://{backend_addr}/"),
        args,
        &pin,
        None,
    )?;

    let rauta_dir = out.join("rauta-http");
    let _ = std::fs::remove_dir_all(&rauta_dir);
    manifests::write(&rauta_dir, &backend_addr.to_string(), 0, true)?;
    let mut c = pinned(&pin.proxy, rauta);
    c.args(["run", "--manifests"])
        .arg(&rauta_dir)
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--workers",
            "1",
            "--kernel-tiers",
            "off",
            "--log-level",
            "warn",
            "--print-listen-addrs",
        ])
        .stdout(Stdio::piped());
    let mut rauta_proxy = Guard::spawn("rauta", &mut c)?;
    let line = rauta_proxy.wait_for_line("listening", Duration::from_secs(15))?;
    let (rauta_http, admin) = parse_listen_line(&line)?;
    wait_ready(&admin, Duration::from_secs(10), &mut rauta_proxy)?;
    let rauta_url = format!("http://{rauta_http}/");
    // Both proxies run for the whole comparison, pinned to the same core; the one not measured is idle.
    let (nginx_proxy, nginx_url) =
        start_nginx_proxy(nginx, "nginx-proxy.conf", out, backend_addr, &pin)?;

    // Rounds of RAUTA and nginx back to back, the order swapped every round: a ratio is taken within a
    // round, so that the machine's slow and fast moments hit both sides of it.
    let mut rauta_rounds = Vec::new();
    let mut nginx_rounds = Vec::new();
    for round in 1..=args.rounds {
        println!("  round {round} of {}", args.rounds);
        let rauta_first = round % 2 == 1;
        for rauta_turn in [rauta_first, !rauta_first] {
            if rauta_turn {
                rauta_rounds.push(measure(
                    "RAUTA (--workers 1)",
                    &rauta_url,
                    args,
                    &pin,
                    Some(rauta_proxy.pid()),
                )?);
            } else {
                nginx_rounds.push(measure(
                    "nginx (worker_processes 1)",
                    &nginx_url,
                    args,
                    &pin,
                    Some(nginx_proxy.pid()),
                )?);
            }
        }
    }
    rauta_proxy.check_alive()?;
    drop(rauta_proxy);
    drop(nginx_proxy);
    let ratios: Vec<f64> = rauta_rounds
        .iter()
        .zip(&nginx_rounds)
        .map(|(r, n)| r.wrk.rps / n.wrk.rps.max(1.0))
        .collect();
    let p99_ratios: Vec<f64> = rauta_rounds
        .iter()
        .zip(&nginx_rounds)
        .map(|(r, n)| r.wrk.p99_ms / n.wrk.p99_ms.max(1e-9))
        .collect();
    let via_rauta = median_round(rauta_rounds);
    let via_nginx = median_round(nginx_rounds);

    let via_nginx_minimal = measure_nginx(
        nginx,
        "nginx-proxy-minimal.conf",
        "nginx, no X-Forwarded-*",
        out,
        backend_addr,
        args,
        &pin,
    )?;

    let ratio = median(&ratios);
    let p99_ratio = median(&p99_ratios);
    let ratio_minimal = via_rauta.wrk.rps / via_nginx_minimal.wrk.rps.max(1.0);
    let per_round = format!(
        "per round: throughput {}, p99 {}",
        ratio_list(&ratios),
        ratio_list(&p99_ratios)
    );
    println!(
        "  RAUTA/nginx, median of {} rounds: {ratio:.2}x throughput, p99 {p99_ratio:.2}x ({per_round}); \
         against nginx without X-Forwarded-* (one run): {ratio_minimal:.2}x",
        args.rounds
    );
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Tier 3: HTTP/1.1 keep-alive on loopback\n\n\
         wrk -t1 -c{} -d{}s --latency (after a 1 s warm-up); backend: nginx `return 200 \"ok\\n\"`; {}; \
         1-minute load average before the runs: {load1}. RAUTA and nginx: {} rounds back to back (order \
         swapped each round), the row is the median round by req/s.\n\n\
         | target | req/s | p50 ms | p99 ms | errors | proxy CPU µs/request |\n|---|---:|---:|---:|---:|---:|",
        args.connections, args.duration, pin.note, args.rounds
    );
    for (label, r) in [
        ("direct to backend", &direct),
        ("RAUTA (`--workers 1`)", &via_rauta),
        ("nginx (`worker_processes 1`)", &via_nginx),
        ("nginx, no `X-Forwarded-*`", &via_nginx_minimal),
    ] {
        let cpu = r
            .cpu_us_per_req
            .map_or("-".to_owned(), |us| format!("{us:.1}"));
        let w = &r.wrk;
        let _ = writeln!(
            md,
            "| {label} | {:.0} | {:.3} | {:.3} | {} | {cpu} |",
            w.rps, w.p50_ms, w.p99_ms, w.errors
        );
    }
    let _ = writeln!(
        md,
        "\nRAUTA/nginx throughput, median of the rounds' ratios: **{ratio:.2}x** (same headers), p99 \
         {p99_ratio:.2}x ({per_round}); {ratio_minimal:.2}x against nginx without X-Forwarded-*\n"
    );
    Ok(md)
}

/// Starts nginx as a proxy from `template` in front of the backend, on the proxy's core; returns it and
/// its URL.
fn start_nginx_proxy(
    nginx: &Path,
    template: &str,
    out: &Path,
    backend: SocketAddr,
    pin: &Pinning,
) -> Result<(Guard, String)> {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let prefix = out.join(template.trim_end_matches(".conf"));
    let g = start_nginx(nginx, template, &prefix, addr, Some(backend), &pin.proxy)?;
    Ok((g, format!("http://{addr}/")))
}

/// The median of `values` (the mean of the middle two of an even count); 0 when empty.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Per-round ratios as the summaries print them: `1.02, 0.97, 1.00`.
fn ratio_list(ratios: &[f64]) -> String {
    ratios
        .iter()
        .map(|r| format!("{r:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The round whose requests/s is the median (a whole measurement: its latencies and CPU belong to it).
fn median_round(mut rounds: Vec<Measured>) -> Measured {
    rounds.sort_by(|a, b| a.wrk.rps.total_cmp(&b.wrk.rps));
    let middle = rounds.len() / 2;
    rounds.swap_remove(middle)
}

/// Starts nginx as a proxy from `template` in front of the backend, on the proxy's core, and measures it.
fn measure_nginx(
    nginx: &Path,
    template: &str,
    label: &str,
    out: &Path,
    backend: SocketAddr,
    args: &BenchArgs,
    pin: &Pinning,
) -> Result<Measured> {
    let (g, url) = start_nginx_proxy(nginx, template, out, backend, pin)?;
    measure(label, &url, args, pin, Some(g.pid()))
}

fn memory_bench(rauta: &Path, out: &Path) -> Result<String> {
    // An address nothing listens on: idle memory needs routes, not traffic.
    let backend = "127.0.0.1:9";
    let mut rows = Vec::new();
    for &paths in MEMORY_PATHS {
        let dir = out.join(format!("mem-{paths}"));
        let _ = std::fs::remove_dir_all(&dir);
        manifests::write(&dir, backend, paths, false)?;
        let started = Instant::now();
        let mut c = Command::new(rauta);
        c.args(["run", "--manifests"])
            .arg(&dir)
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--https-listen",
                "127.0.0.1:0",
            ])
            .args([
                "--kernel-tiers",
                "off",
                "--log-level",
                "warn",
                "--print-listen-addrs",
            ])
            .stdout(Stdio::piped());
        let mut g = Guard::spawn("rauta", &mut c)?;
        let line = g.wait_for_line("listening", Duration::from_secs(60))?;
        let (_, admin) = parse_listen_line(&line)?;
        wait_ready(&admin, Duration::from_secs(60), &mut g)?;
        let ready = started.elapsed();
        // Let start-up allocations settle (allocator caches, the first metrics scrape is not part of idle).
        std::thread::sleep(Duration::from_millis(500));
        let kib = vm_rss_kib(g.pid())?;
        println!(
            "  {paths:>6} paths: RSS {:>7.1} MiB, ready after {:>6.0} ms",
            kib as f64 / 1024.0,
            ready.as_secs_f64() * 1000.0
        );
        rows.push((paths, kib, ready));
    }
    let base = rows.first().map(|r| r.1).unwrap_or(0);
    let mut md = String::from(
        "## Memory: idle `rauta run` by number of Ingress paths\n\n\
         Generated Prefix paths, 100 per Ingress, one host per Ingress; VmRSS after /readyz plus 0.5 s.\n\n\
         | paths | RSS MiB | growth per 1,000 paths | ready after |\n|---:|---:|---:|---:|\n",
    );
    for (paths, kib, ready) in &rows {
        let growth = if *paths == 0 {
            "-".to_owned()
        } else {
            let per_k = (*kib as f64 - base as f64) / 1024.0 / (*paths as f64 / 1000.0);
            format!("{per_k:.2} MiB")
        };
        if *paths > 0 {
            println!("  {paths:>6} paths: growth {growth} per 1,000 paths");
        }
        let _ = writeln!(
            md,
            "| {paths} | {:.1} | {growth} | {:.0} ms |",
            *kib as f64 / 1024.0,
            ready.as_secs_f64() * 1000.0
        );
    }
    md.push('\n');
    Ok(md)
}

/// `VmRSS` of a process, in KiB.
fn vm_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")
}
