//! The command line as a user meets it: `rauta check`, usage errors, startup failures, graceful shutdown.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;

fn demo_manifest() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/demo.yaml")
        .display()
        .to_string()
}

#[test]
fn check_prints_the_table_and_exits_0_for_the_demo() {
    let (status, stdout, stderr) = run_to_end(&["check", "--manifests", &demo_manifest()]);
    assert_eq!(
        status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let header = stdout.lines().next().unwrap();
    for column in ["HOST", "PATH", "TYPE", "TIER", "SERVICE", "ENDPOINTS"] {
        assert!(header.contains(column), "{header}");
    }
    let exact = stdout
        .lines()
        .find(|l| l.contains("/status"))
        .expect("no /status route");
    assert!(
        exact.contains("shop.demo.example") && exact.contains("Exact") && exact.contains("1 (XDP)"),
        "{exact}"
    );
    assert!(
        exact.contains("demo/api:8080") && exact.contains("127.0.0.21:18083"),
        "{exact}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("*.demo.example") && l.contains("2 (TC)")),
        "{stdout}"
    );
    assert!(stdout.contains("demo/fallback:80"), "{stdout}");
    assert!(stdout.contains("ok: "), "{stdout}");
}

/// The kernel demo's manifest (`cargo xtask demo` as root) is valid and routes as the demo says.
#[test]
fn check_accepts_the_kernel_demo_manifest() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/kernel-demo.yaml")
        .display()
        .to_string();
    let (status, stdout, stderr) = run_to_end(&["check", "--manifests", &manifest]);
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    for (path, service, endpoints) in [
        ("/a ", "demo/echo-a:80", "198.18.1.2:8080"),
        ("/b ", "demo/echo-b:80", "198.18.1.3:8080"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.contains(path))
            .unwrap_or_else(|| panic!("no {path} route: {stdout}"));
        assert!(
            line.contains("Exact") && line.contains("1 (XDP)") && line.contains(service),
            "{line}"
        );
        assert!(line.contains(endpoints), "{line}");
    }
}

#[test]
fn check_json_output_is_the_route_table() {
    let (status, stdout, _) =
        run_to_end(&["check", "--manifests", &demo_manifest(), "--output", "json"]);
    assert_eq!(status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["ok"], true);
    let routes = json["routes"].as_array().unwrap();
    assert!(
        routes
            .iter()
            .any(|r| r["host"] == "*.demo.example" && r["tier"] == 2),
        "{json:#}"
    );
    assert!(
        routes
            .iter()
            .any(|r| r["host"].is_null() && r["path"] == "/api"),
        "{json:#}"
    );
    assert!(!json["defaultBackends"].as_array().unwrap().is_empty());
}

#[test]
fn check_reports_every_problem_and_exits_1() {
    let dir = ManifestDir::new();
    let yaml = ingress_class()
        + &service("web", &["127.0.0.1:9".parse().unwrap()])
        + &ingress(
            "good",
            &[(Some("good.example"), &[path("/", "Prefix", "web")])],
            None,
        )
        + &ingress(
            "badtype",
            &[(Some("bad.example"), &[path("/", "Sideways", "web")])],
            None,
        )
        + &ingress(
            "ghost",
            &[(
                Some("ghost.example"),
                &[path("/", "Prefix", "nosuchservice")],
            )],
            None,
        );
    dir.write("a.yaml", &yaml);
    dir.write("b.yaml", "kind: [unclosed\n");
    let (status, stdout, stderr) =
        run_to_end(&["check", "--manifests", dir.path().to_str().unwrap()]);
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert!(
        errors
            .iter()
            .any(|l| l.contains("a.yaml") && l.contains("pathType")),
        "{stdout}"
    );
    assert!(errors.iter().any(|l| l.contains("b.yaml")), "{stdout}");
    assert!(
        errors.iter().any(|l| l.contains("nosuchservice")),
        "{stdout}"
    );
    // The valid route is still listed.
    assert!(
        stdout.lines().any(|l| l.starts_with("good.example")),
        "{stdout}"
    );
    assert!(stdout.contains("check failed"), "{stdout}");

    let (status, stdout, _) = run_to_end(&[
        "check",
        "--manifests",
        dir.path().to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert!(!json["errors"].as_array().unwrap().is_empty());
    assert!(!json["diagnostics"].as_array().unwrap().is_empty());
}

#[test]
fn check_without_manifests_or_with_a_missing_path_fails() {
    let (status, _, stderr) = run_to_end(&["check"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--manifests"), "{stderr}");
    let (status, stdout, _) = run_to_end(&["check", "--manifests", "/nonexistent/rauta.yaml"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stdout.contains("cannot read /nonexistent/rauta.yaml"),
        "{stdout}"
    );
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    // Kubernetes-mode flags make no sense with files.
    let (status, _, stderr) = run_to_end(&["run", "--manifests", "x", "--kubeconfig", "k"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("--kubeconfig"), "{stderr}");

    for (args, needle) in [
        (
            &["run", "--manifests", "x", "--http-listen", "nonsense"][..],
            "--http-listen",
        ),
        (
            &["run", "--manifests", "x", "--upstream-connect-timeout", "5"][..],
            "--upstream-connect-timeout",
        ),
        (
            &["run", "--manifests", "x", "--kernel-tiers", "maybe"][..],
            "--kernel-tiers",
        ),
        (
            &[
                "run",
                "--manifests",
                "x",
                "--default-backend",
                "nonamespace:80",
            ][..],
            "NAMESPACE/NAME:PORT",
        ),
        (
            &["run", "--manifests", "x", "--workers", "0"][..],
            "--workers",
        ),
        (
            &["run", "--manifests", "x", "--log-format", "xml"][..],
            "--log-format",
        ),
    ] {
        let (status, _, stderr) = run_to_end(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn kernel_tiers_required_exits_1_and_auto_says_why_it_serves_tier_3() {
    let dir = ManifestDir::new();
    dir.write("a.yaml", &ingress_class());
    // The VIP must be one IPv4 address; this is refused before anything touches the kernel, so it needs
    // no privileges.
    for (listen, interface, needle) in [
        (
            "0.0.0.0:8080",
            Some("lo"),
            "is not one specific IPv4 address",
        ),
        ("[::1]:8080", Some("lo"), "is not one specific IPv4 address"),
        ("127.0.0.1:0", None, "no --interface given"),
    ] {
        let mut args = vec![
            "run",
            "--manifests",
            dir.path().to_str().unwrap(),
            "--kernel-tiers",
            "required",
            "--http-listen",
            listen,
            "--admin-listen",
            "127.0.0.1:0",
        ];
        if let Some(interface) = interface {
            args.extend(["--interface", interface]);
        }
        let (status, _, stderr) = run_to_end(&args);
        assert_eq!(status.code(), Some(1), "{listen}: {stderr}");
        assert!(
            stderr.contains("--kernel-tiers required") && stderr.contains(needle),
            "{listen}: {stderr}"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "expected one clear line:\n{stderr}"
        );
    }

    let one_kernel_line = |rauta: &Rauta, expected: &str| {
        let line = rauta.wait_for_log("kernel tiers");
        assert!(line.contains(expected), "{line}");
        rauta.wait_for_log("serving");
        let lines: Vec<String> = rauta
            .logs()
            .into_iter()
            .filter(|l| l.contains("kernel tiers"))
            .collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
    };
    let rauta = Rauta::start(dir.path(), &["--kernel-tiers", "auto"]);
    one_kernel_line(
        &rauta,
        "kernel tiers off: no --interface given; serving with Tier 3 only",
    );
    drop(rauta);

    // auto falls back with the reason: a port-0 listener is not a VIP.
    let rauta = Rauta::start(dir.path(), &["--kernel-tiers", "auto", "--interface", "lo"]);
    one_kernel_line(
        &rauta,
        "kernel tiers off: --http-listen 127.0.0.1:0 is not one specific IPv4 address",
    );
    drop(rauta);

    let rauta = Rauta::start(dir.path(), &["--kernel-tiers", "off"]);
    one_kernel_line(&rauta, "kernel tiers off: --kernel-tiers off");
    let metrics = rauta_metrics(&rauta);
    assert!(
        metrics.contains("rauta_kernel_tiers_enabled 0"),
        "{metrics}"
    );
}

fn rauta_metrics(rauta: &Rauta) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(get(rauta.admin, "localhost", "/metrics"))
        .unwrap()
        .text()
}

#[test]
fn a_busy_port_is_one_clear_error_line() {
    let dir = ManifestDir::new();
    dir.write("a.yaml", &ingress_class());
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (status, _, stderr) = run_to_end(&[
        "run",
        "--manifests",
        dir.path().to_str().unwrap(),
        "--http-listen",
        &addr,
        "--admin-listen",
        "127.0.0.1:0",
        "--kernel-tiers",
        "off",
        "--log-level",
        "off",
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim(), format!("error: cannot listen on {addr}: address already in use (another process listens there; choose another --http-listen)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_exits_0() {
    let (slow, _s) = backend("slow").await;
    let dir = ManifestDir::new();
    dir.write(
        "a.yaml",
        &(ingress_class()
            + &service("slow", &[slow])
            + &ingress("i", &[(None, &[path("/", "Prefix", "slow")])], None)),
    );
    let mut rauta = Rauta::start(dir.path(), &["--kernel-tiers", "off"]);
    let http = rauta.http;
    assert_eq!(get(http, "h", "/").await.unwrap().status, StatusCode::OK);

    let in_flight = tokio::spawn(async move { get(http, "h", "/delay/1500").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    rauta.signal("TERM");
    // Not ready any more, while draining.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(http).await.is_err(),
        "still accepting after SIGTERM"
    );

    let answer = in_flight.await.unwrap().expect("in-flight request was cut");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "slow GET /delay/1500\n");
    let status = tokio::task::spawn_blocking(move || {
        let status = rauta.wait_exit(Duration::from_secs(10));
        (status, rauta)
    })
    .await
    .unwrap();
    let (status, rauta) = status;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "logs:\n{}",
        rauta.logs().join("\n")
    );
    assert!(signalled.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_health_before_and_after_start() {
    let dir = ManifestDir::new();
    dir.write("a.yaml", &ingress_class());
    let rauta = Rauta::start(dir.path(), &["--log-format", "json"]);
    assert_eq!(rauta.admin_get("/readyz").await.status, StatusCode::OK);
    assert_eq!(rauta.admin_get("/healthz").await.status, StatusCode::OK);
    // JSON logs: every line is a JSON object.
    let logs = rauta.logs();
    assert!(!logs.is_empty());
    for line in logs {
        serde_json::from_str::<serde_json::Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

#[test]
fn a_privileged_port_without_privileges_suggests_what_to_do() {
    let unprivileged_start =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|text| text.trim().parse::<u16>().ok())
            .unwrap_or(1024);
    if unprivileged_start <= 80 {
        eprintln!("skipped: port 80 is not privileged on this host (ip_unprivileged_port_start={unprivileged_start})");
        return;
    }
    // The binary and the manifest must be reachable by the unprivileged user, whatever the permissions of
    // the checkout and of the test's private temp dir: copy both to a world-readable directory.
    let shared = std::env::temp_dir().join(format!("rauta-priv-{}", std::process::id()));
    std::fs::create_dir_all(&shared).unwrap();
    let binary = shared.join("rauta");
    std::fs::copy(RAUTA, &binary).unwrap();
    let manifest = shared.join("a.yaml");
    std::fs::write(&manifest, ingress_class()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        for (path, mode) in [(&shared, 0o755), (&binary, 0o755), (&manifest, 0o644)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    let args = [
        "run",
        "--manifests",
        manifest.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:80",
        "--admin-listen",
        "127.0.0.1:0",
        "--kernel-tiers",
        "off",
        "--log-level",
        "off",
    ];
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut command = if is_root {
        // Drop to nobody so that binding port 80 is refused; setpriv is in util-linux.
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary);
        c
    } else {
        std::process::Command::new(&binary)
    };
    let output = command
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output();
    let _ = std::fs::remove_dir_all(&shared);
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot run setpriv in CI: {error}"
            );
            eprintln!("skipped: needs setpriv to drop root ({error})");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: cannot listen on 127.0.0.1:80: permission denied (try --http-listen 127.0.0.1:8080 or run as root)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_timeout_bounds_the_drain() {
    let (slow, _s) = backend("slow").await;
    let dir = ManifestDir::new();
    dir.write(
        "a.yaml",
        &(ingress_class()
            + &service("slow", &[slow])
            + &ingress("i", &[(None, &[path("/", "Prefix", "slow")])], None)),
    );
    let mut rauta = Rauta::start(dir.path(), &["--shutdown-timeout", "500ms"]);
    let http = rauta.http;
    let stuck = tokio::spawn(async move { get(http, "h", "/delay/20000").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    rauta.signal("INT");
    let (status, rauta) =
        tokio::task::spawn_blocking(move || (rauta.wait_exit(Duration::from_secs(10)), rauta))
            .await
            .unwrap();
    let took = signalled.elapsed();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "logs:\n{}",
        rauta.logs().join("\n")
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "exited after {took:?}"
    );
    rauta.wait_for_log("shutdown timeout passed");
    // The request that outlived the timeout was cut, not answered.
    assert!(stuck.await.unwrap().is_err());
}
