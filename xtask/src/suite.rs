//! `cargo xtask test`: setup, then every check CI runs, in the order a developer would run them.
//!
//! All steps run even after a failure (a fmt slip should not hide a failing test), except the tests, which
//! are skipped when the build failed because they could only repeat the build error. The environment is
//! passed through untouched: tests read `CI=true` themselves to turn "skipped: needs root" into a failure.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::cmd::{self, cargo, succeeds};
use crate::setup::{self, SetupArgs};

/// How one step ended.
enum Outcome {
    Passed,
    Failed(String),
    Skipped(&'static str),
}

struct Step {
    name: &'static str,
    outcome: Outcome,
    took: Duration,
}

/// Runs the suite; an error if any step failed.
pub fn run() -> Result<()> {
    let started = Instant::now();
    let mut steps = Vec::new();
    let mut timed = |name: &'static str, f: &mut dyn FnMut() -> Result<()>| {
        println!("\n==> {name}");
        let t = Instant::now();
        let outcome = match f() {
            Ok(()) => Outcome::Passed,
            Err(e) => {
                eprintln!("{name}: {e:#}");
                Outcome::Failed(format!("{e:#}"))
            }
        };
        let passed = matches!(outcome, Outcome::Passed);
        steps.push(Step {
            name,
            outcome,
            took: t.elapsed(),
        });
        passed
    };

    timed("setup", &mut || setup::run(&SetupArgs::default()));
    timed("fmt", &mut || {
        cmd::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
        // The BPF crate is outside the workspace (it builds for bpfel with nightly), so `--all` misses it.
        cmd::run(cargo().args([
            "fmt",
            "--manifest-path",
            "crates/rauta-ebpf/Cargo.toml",
            "--",
            "--check",
        ]))
    });
    timed("clippy", &mut || {
        cmd::run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    });
    let built = timed("build", &mut || {
        cmd::run(cargo().args(["build", "--workspace", "--all-targets"]))
    });
    if built {
        timed("tests", &mut || {
            if succeeds(cargo().args(["nextest", "--version"])) {
                // nextest does not run doctests. They go first so that nextest's summary line
                // ("N tests run: N passed") is the runner's closing line that CI reads.
                cmd::run(cargo().args(["test", "--workspace", "--doc"]))?;
                cmd::run(cargo().args(["nextest", "run", "--workspace", "--no-fail-fast"]))
            } else {
                println!("(cargo-nextest not found; using cargo test)");
                cmd::run(cargo().args(["test", "--workspace", "--no-fail-fast"]))
            }
        });
    } else {
        steps.push(Step {
            name: "tests",
            outcome: Outcome::Skipped("build failed"),
            took: Duration::ZERO,
        });
    }

    println!("\n==> summary ({})", whoami());
    let mut failures = 0;
    for s in &steps {
        let (mark, note) = match &s.outcome {
            Outcome::Passed => ("ok  ", String::new()),
            Outcome::Failed(e) => {
                failures += 1;
                ("FAIL", format!("  {}", first_line(e)))
            }
            Outcome::Skipped(why) => {
                failures += 1;
                ("SKIP", format!("  ({why})"))
            }
        };
        println!(
            "  {mark} {:<8} {:>6.1}s{note}",
            s.name,
            s.took.as_secs_f64()
        );
    }
    println!("  total {:.0}s", started.elapsed().as_secs_f64());
    if failures > 0 {
        bail!("{failures} step(s) did not pass");
    }
    println!("all steps passed");
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// A note on privileges, since root-only tests fail (CI=true) or skip without root.
fn whoami() -> String {
    let root = cmd::output(Command::new("id").arg("-u"))
        .map(|u| u.trim() == "0")
        .unwrap_or(false);
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    match (root, ci) {
        (true, _) => "as root: root-only tests ran".into(),
        (false, true) => "not root, CI=true: root-only tests fail".into(),
        (false, false) => "not root: root-only tests were skipped".into(),
    }
}
