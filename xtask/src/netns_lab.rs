//! The network-namespace topology the kernel demo and the kernel benchmark run in (root only):
//!
//! ```text
//! client 198.18.0.2 ── veth ── 198.18.0.1 node 198.18.1.1 ── veth ── 198.18.1.2, .3 … backends
//! ```
//!
//! The node forwards between its two legs, as a Kubernetes node does (the splice's FIB lookup needs it),
//! and every veth sends full checksums (XDP rewrites packets with incremental checksum updates, so veth
//! must not leave them partial).
//!
//! Invariant: the namespaces are removed on every exit — by [`Lab`]'s `Drop` on success, error or panic,
//! and on Ctrl-C or a kill by a watchdog shell (it ignores SIGINT and removes them once this process is
//! gone). Leftovers of a run killed before its watchdog ran are removed before creating.

use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::cmd::{self, output};

/// Where a setting or a command applies.
#[derive(Clone, Copy)]
pub enum Role {
    Client,
    Node,
    Backends,
}

/// What differs between the topologies: names (so that the demo and the benchmark can never remove each
/// other's namespaces), the backends' addresses and the sysctls.
pub struct LabSpec {
    /// Namespace names: client, node, backends.
    pub client: &'static str,
    pub node: &'static str,
    pub backends: &'static str,
    /// veth ends: (node side, peer side) of the client leg and of the backend leg.
    pub client_leg: (&'static str, &'static str),
    pub backend_leg: (&'static str, &'static str),
    /// The backends' addresses (without prefix length), all on the backend leg's peer.
    pub backend_addrs: &'static [&'static str],
    /// Settings beyond `net.ipv4.ip_forward=1` on the node, e.g. `(Role::Node, "net.core.somaxconn=4096")`.
    pub sysctls: &'static [(Role, &'static str)],
}

/// The client's address (the node's client leg is its gateway).
pub const CLIENT_ADDR: &str = "198.18.0.2";
/// The node's address on the client leg: where the VIPs live.
pub const NODE_CLIENT_SIDE: &str = "198.18.0.1";
/// The node's address on the backend leg (the backends' gateway).
pub const NODE_BACKEND_SIDE: &str = "198.18.1.1";

/// A created topology; removed on drop and, should this process die first, by the watchdog.
pub struct Lab {
    spec: &'static LabSpec,
    _watchdog: std::process::Child,
}

impl Lab {
    pub fn create(spec: &'static LabSpec) -> Result<Lab> {
        remove(spec);
        let dels: Vec<String> = spec
            .namespaces()
            .iter()
            .map(|ns| format!("ip netns del {ns} 2>/dev/null"))
            .collect();
        // Ctrl-C reaches the whole foreground process group: this shell ignores it and cleans up once
        // we are gone; after a normal exit its deletes find nothing and fail silently.
        let script = format!(
            "trap '' INT TERM HUP; while kill -0 {} 2>/dev/null; do sleep 0.5; done; {}",
            std::process::id(),
            dels.join("; ")
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start the clean-up watchdog")?;
        let lab = Lab {
            spec,
            _watchdog: watchdog,
        };
        lab.build()?;
        Ok(lab)
    }

    fn build(&self) -> Result<()> {
        let s = self.spec;
        let ip = |args: &[&str]| cmd::run(Command::new("ip").args(args));
        for ns in s.namespaces() {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        for ((node_dev, peer_dev), peer_ns) in
            [(s.client_leg, s.client), (s.backend_leg, s.backends)]
        {
            ip(&[
                "link", "add", node_dev, "netns", s.node, "type", "veth", "peer", "name", peer_dev,
                "netns", peer_ns,
            ])?;
        }
        let mut addrs = vec![
            (s.client, s.client_leg.1, format!("{CLIENT_ADDR}/24")),
            (s.node, s.client_leg.0, format!("{NODE_CLIENT_SIDE}/24")),
            (s.node, s.backend_leg.0, format!("{NODE_BACKEND_SIDE}/24")),
        ];
        addrs.extend(
            s.backend_addrs
                .iter()
                .map(|a| (s.backends, s.backend_leg.1, format!("{a}/24"))),
        );
        for (ns, dev, addr) in &addrs {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
        }
        for (ns, dev) in [
            (s.client, s.client_leg.1),
            (s.node, s.client_leg.0),
            (s.node, s.backend_leg.0),
            (s.backends, s.backend_leg.1),
        ] {
            output(netns(ns).args(["ethtool", "-K", dev, "tx", "off"]))?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        ip(&[
            "-n",
            s.backends,
            "route",
            "add",
            "default",
            "via",
            NODE_BACKEND_SIDE,
        ])?;
        ip(&[
            "-n",
            s.client,
            "route",
            "add",
            "default",
            "via",
            NODE_CLIENT_SIDE,
        ])?;
        let forward = [(Role::Node, "net.ipv4.ip_forward=1")];
        for (role, setting) in forward.iter().chain(s.sysctls) {
            output(netns(s.name(*role)).args(["sysctl", "-qw", setting]))?;
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        remove(self.spec);
    }
}

impl LabSpec {
    fn namespaces(&self) -> [&'static str; 3] {
        [self.client, self.node, self.backends]
    }

    /// The namespace of `role`.
    pub fn name(&self, role: Role) -> &'static str {
        match role {
            Role::Client => self.client,
            Role::Node => self.node,
            Role::Backends => self.backends,
        }
    }
}

fn remove(spec: &LabSpec) {
    for ns in spec.namespaces() {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
}

/// `ip netns exec NS` as the start of a command.
pub fn netns(ns: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]);
    c
}

/// True if this process runs as root (namespaces, XDP and TC need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
