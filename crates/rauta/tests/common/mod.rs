//! Shared helpers for the process-level tests: start the real `rauta` binary, generate manifests, talk to
//! it over real sockets.
//!
//! Every process is owned by a guard that kills it on drop, so a failing assertion never leaves a daemon
//! behind. The binary listens on port 0 and reports the bound addresses with its hidden
//! `--print-listen-addrs` flag: no port is guessed, so tests cannot race each other for ports.

#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use rauta_testkit::client::{get, Answer, Connection};
pub use rauta_testkit::echo;

/// The binary under test.
pub const RAUTA: &str = env!("CARGO_BIN_EXE_rauta");

/// How long a test waits for the process to come up or for a condition; generous for a loaded CI box.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running `rauta run`, killed on drop.
pub struct Rauta {
    child: Option<Child>,
    /// Proxy (plain HTTP) address.
    pub http: SocketAddr,
    /// Proxy HTTPS address.
    pub https: SocketAddr,
    /// Admin address.
    pub admin: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    /// stdout lines after the listening line (the access log).
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Rauta {
    /// `rauta run` with loopback listeners on port 0, kernel tiers off, and `extra` arguments.
    pub fn start(manifests: &Path, extra: &[&str]) -> Rauta {
        Self::try_start(manifests, extra).unwrap_or_else(|(status, logs)| {
            panic!(
                "rauta exited during startup with {status:?}; stderr:\n{}",
                logs.join("\n")
            )
        })
    }

    /// Like [`Rauta::start`], but a process that exits before listening is returned as its status and logs.
    pub fn try_start(
        manifests: &Path,
        extra: &[&str],
    ) -> Result<Rauta, (Option<ExitStatus>, Vec<String>)> {
        Self::try_start_from(&[OsStr::new("--manifests"), manifests.as_os_str()], extra)
    }

    /// Like [`Rauta::start`], with the configuration source given as arguments (`--manifests PATH`, or
    /// `--kubeconfig PATH` for Kubernetes mode).
    pub fn start_from(source: &[&OsStr], extra: &[&str]) -> Rauta {
        Self::try_start_from(source, extra).unwrap_or_else(|(status, logs)| {
            panic!(
                "rauta exited during startup with {status:?}; stderr:\n{}",
                logs.join("\n")
            )
        })
    }

    /// Like [`Rauta::try_start`], with the configuration source given as arguments.
    pub fn try_start_from(
        source: &[&OsStr],
        extra: &[&str],
    ) -> Result<Rauta, (Option<ExitStatus>, Vec<String>)> {
        let mut command = Command::new(RAUTA);
        command
            .arg("run")
            .args(source)
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--https-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--print-listen-addrs",
            ])
            .args(["--reload-debounce", "50ms", "--log-level", "debug"])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("cannot start the rauta binary");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // Shown only when a test fails (the harness captures it otherwise).
                    eprintln!("[rauta] {line}");
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let collected = stdout_lines.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                collected.lock().unwrap().push(sink.trim_end().to_owned());
                sink.clear();
            }
        });
        let mut guard = Rauta {
            child: Some(child),
            http: ([0, 0, 0, 0], 0).into(),
            https: ([0, 0, 0, 0], 0).into(),
            admin: ([0, 0, 0, 0], 0).into(),
            logs,
            stdout: stdout_lines,
        };
        match rx.recv_timeout(PATIENCE) {
            Ok(line) if line.starts_with("listening ") => {
                for field in line.split_whitespace().skip(1) {
                    let (key, value) = field.split_once('=').unwrap();
                    let addr = value.parse().unwrap();
                    match key {
                        "http" => guard.http = addr,
                        "https" => guard.https = addr,
                        "admin" => guard.admin = addr,
                        _ => {}
                    }
                }
                Ok(guard)
            }
            _ => {
                let status = guard.wait_exit(Duration::from_secs(5));
                // Give the stderr thread a moment to collect the last lines.
                std::thread::sleep(Duration::from_millis(100));
                Err((status, guard.logs()))
            }
        }
    }

    /// Every stderr line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Every stdout line after the listening line so far (the access log, with `--access-log`).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Wait until a stderr line contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line contains {needle:?}; logs:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Send a signal by name (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET on the admin listener.
    pub async fn admin_get(&self, path: &str) -> Answer {
        get(self.admin, "localhost", path).await.unwrap()
    }

    /// The value of a metric sample line starting with `prefix` (name plus labels), if present.
    pub async fn metric(&self, prefix: &str) -> Option<f64> {
        let text = self.admin_get("/metrics").await.text();
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

impl Drop for Rauta {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a tool a test needs from outside the workspace is there. When it is not: the test must not pass
/// by skipping in CI, so this fails it when CI=true, and otherwise says `skipped: needs WHAT` and returns
/// `false` (the test then returns).
pub fn require(present: bool, what: &str) -> bool {
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} is required in CI (cargo xtask setup)"
        );
        eprintln!("skipped: needs {what} (cargo xtask setup)");
    }
    present
}

/// [`require`] for a Python module the test's Python peers import (`what` names it for people).
pub fn require_python_module(module: &str, what: &str) -> bool {
    let present = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(present, what)
}

/// Run `rauta` to completion with `args`; returns (status, stdout, stderr). Killed after [`PATIENCE`].
pub fn run_to_end(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(RAUTA)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rauta {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Start an echo backend on a fresh loopback port.
pub async fn backend(name: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    echo::spawn("127.0.0.1:0".parse().unwrap(), name)
        .await
        .unwrap()
}

/// An address nothing listens on (bound, then released: connecting is refused).
pub fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// YAML for the IngressClass `rauta`.
pub fn ingress_class() -> String {
    "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: rauta\nspec:\n  controller: rauta.io/ingress-controller\n---\n".into()
}

/// YAML for Service `default/NAME` with port 80 named `http`, and one EndpointSlice per endpoint (ready
/// unless listed in `not_ready`).
pub fn service(name: &str, endpoints: &[SocketAddr]) -> String {
    service_with(name, endpoints, &[])
}

/// [`service`] with some endpoints marked not ready.
pub fn service_with(name: &str, endpoints: &[SocketAddr], not_ready: &[SocketAddr]) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n    - name: http\n      port: 80\n---\n"
    );
    let all = endpoints
        .iter()
        .map(|e| (e, true))
        .chain(not_ready.iter().map(|e| (e, false)));
    for (i, (endpoint, ready)) in all.enumerate() {
        yaml.push_str(&format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-{i}\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\nports:\n  - name: http\n    port: {port}\nendpoints:\n  - addresses: [\"{ip}\"]\n    conditions:\n      ready: {ready}\n---\n",
            port = endpoint.port(),
            ip = endpoint.ip(),
        ));
    }
    yaml
}

/// [`service`] with `annotations` on the Service.
pub fn annotated_service(
    name: &str,
    endpoints: &[SocketAddr],
    annotations: &[(&str, &str)],
) -> String {
    let mut block = String::from("  annotations:\n");
    for (k, v) in annotations {
        block.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    service(name, endpoints).replacen(
        &format!("kind: Service\nmetadata:\n  name: {name}\n"),
        &format!("kind: Service\nmetadata:\n  name: {name}\n{block}"),
        1,
    )
}

/// One path of an Ingress rule.
pub struct PathRule<'a> {
    pub path: &'a str,
    pub path_type: &'a str,
    pub service: &'a str,
}

/// YAML for Ingress `default/NAME` of class rauta with one rule per (host, paths) and an optional
/// defaultBackend Service.
pub fn ingress(
    name: &str,
    rules: &[(Option<&str>, &[PathRule])],
    default_backend: Option<&str>,
) -> String {
    let mut yaml = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\nspec:\n  ingressClassName: rauta\n"
    );
    if let Some(service) = default_backend {
        yaml.push_str(&format!("  defaultBackend:\n    service:\n      name: {service}\n      port:\n        number: 80\n"));
    }
    if !rules.is_empty() {
        yaml.push_str("  rules:\n");
    }
    for (host, paths) in rules {
        match host {
            Some(host) => yaml.push_str(&format!(
                "    - host: \"{host}\"\n      http:\n        paths:\n"
            )),
            None => yaml.push_str("    - http:\n        paths:\n"),
        }
        for p in paths.iter() {
            yaml.push_str(&format!(
                "          - path: {}\n            pathType: {}\n            backend:\n              service:\n                name: {}\n                port:\n                  number: 80\n",
                p.path, p.path_type, p.service
            ));
        }
    }
    yaml.push_str("---\n");
    yaml
}

/// Shorthand for a [`PathRule`].
pub fn path<'a>(path: &'a str, path_type: &'a str, service: &'a str) -> PathRule<'a> {
    PathRule {
        path,
        path_type,
        service,
    }
}

/// A temp directory holding manifest files; removed on drop.
pub struct ManifestDir {
    pub dir: tempfile::TempDir,
}

impl ManifestDir {
    /// An empty directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The directory path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Path of file `name` inside.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write `name` atomically (write a hidden temp file, rename over), as editors and `kubectl cp` do.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let target = self.file(name);
        let temp = self.file(&format!(".{name}.tmp"));
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, &target).unwrap();
        target
    }
}

/// Poll `check` until it returns true or [`PATIENCE`] passes.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
