//! The XDP pass program on the client's and the backend's veth ends (the peers of the node's veths).
//!
//! Why: on veth, driver-mode `XDP_TX` and `XDP_REDIRECT` frames reach the peer device only while the
//! peer runs NAPI, which it does while it has an XDP program of its own. Tier 1 in driver mode on the
//! node's veths therefore needs a program on the peers; this harness cannot load BPF itself (xtask must
//! build without bpf-linker), so it runs rauta-dataplane's example `xdp_pass` once per peer, in the
//! peer's namespace, for the whole kernel benchmark: direct, Tier 1, Tier 3 and nginx all run on the same
//! topology.
//!
//! Invariant: each program stays attached exactly as long as its [`Guard`] lives (SIGTERM on drop makes
//! the example detach and exit; it also exits if this process dies first).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cmd::{self, cargo, target_dir};
use crate::netns_lab::netns;
use crate::procs::Guard;

/// Builds the example (release, the workspace's target directory) and returns its path.
pub fn build() -> Result<PathBuf> {
    cmd::run(cargo().args([
        "build",
        "--release",
        "-p",
        "rauta-dataplane",
        "--example",
        "xdp_pass",
    ]))
    .context("cannot build rauta-dataplane's example xdp_pass")?;
    Ok(target_dir()
        .join("release")
        .join("examples")
        .join("xdp_pass"))
}

/// Attaches the pass program to each `(namespace, device)` in driver mode; returns the holders.
pub fn attach(program: &Path, ends: &[(&str, &str)]) -> Result<Vec<Guard>> {
    let mut guards = Vec::new();
    for &(ns, dev) in ends {
        let mut c = netns(ns);
        c.arg(program)
            .args(["--dev", dev])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut guard = Guard::spawn(format!("xdp_pass on {dev} (namespace {ns})"), &mut c)?;
        guard.wait_for_line("attached", Duration::from_secs(10))?;
        guards.push(guard);
    }
    Ok(guards)
}
