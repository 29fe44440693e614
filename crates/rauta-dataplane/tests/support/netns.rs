//! Two network namespaces joined by a veth pair, for end-to-end tests; deleted on drop.
//!
//! Addresses come from 198.18.0.0/15 (benchmarking range) and live only inside the namespaces, so
//! concurrent runs do not collide: the namespace and device names carry the process id.

use std::{fs::File, os::fd::AsRawFd, process::Command};

/// The server ("RAUTA") side's address.
pub const SERVER_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 0, 1);
/// The client side's address.
pub const CLIENT_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 0, 2);

/// A server namespace and a client namespace, one veth between them, checksum offload off on both ends
/// (XDP rewrites need full checksums) and `tcp_syncookies=2` on the server side.
pub struct Pair {
    pub server_ns: String,
    pub client_ns: String,
    pub server_dev: String,
    pub client_dev: String,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Pair {
    pub fn create(tag: &str) -> Result<Pair, String> {
        let id = std::process::id();
        let pair = Pair {
            server_ns: format!("rauta-{tag}-s-{id}"),
            client_ns: format!("rauta-{tag}-c-{id}"),
            server_dev: format!("rs{id}"),
            client_dev: format!("rc{id}"),
        };
        // From here on, Drop cleans up whatever was created.
        let (s, c, sd, cd) = (
            &pair.server_ns,
            &pair.client_ns,
            &pair.server_dev,
            &pair.client_dev,
        );
        let server = SERVER_IP.to_string() + "/30";
        let client = CLIENT_IP.to_string() + "/30";
        for cmd in [
            vec!["ip", "netns", "add", s],
            vec!["ip", "netns", "add", c],
            vec![
                "ip", "link", "add", sd, "netns", s, "type", "veth", "peer", "name", cd, "netns", c,
            ],
            vec!["ip", "-n", s, "addr", "add", &server, "dev", sd],
            vec!["ip", "-n", c, "addr", "add", &client, "dev", cd],
            vec!["ip", "netns", "exec", s, "ethtool", "-K", sd, "tx", "off"],
            vec!["ip", "netns", "exec", c, "ethtool", "-K", cd, "tx", "off"],
            vec![
                "ip",
                "netns",
                "exec",
                s,
                "sysctl",
                "-qw",
                "net.ipv4.tcp_syncookies=2",
            ],
            vec!["ip", "-n", s, "link", "set", "lo", "up"],
            vec!["ip", "-n", c, "link", "set", "lo", "up"],
            vec!["ip", "-n", s, "link", "set", sd, "up"],
            vec!["ip", "-n", c, "link", "set", cd, "up"],
        ] {
            run(&cmd)?;
        }
        Ok(pair)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it the peer.
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// Moves the calling thread into the named network namespace (sockets, interface names and XDP attach
/// calls made by this thread then refer to it).
pub fn enter(ns: &str) -> Result<(), String> {
    let file =
        File::open(format!("/var/run/netns/{ns}")).map_err(|e| format!("open netns {ns}: {e}"))?;
    // SAFETY: setns with a valid namespace fd; affects only the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("setns {ns}: {}", std::io::Error::last_os_error()))
    }
}

/// True if `ip` and `ethtool` are installed.
pub fn tools_present() -> bool {
    ["ip", "ethtool"]
        .iter()
        .all(|t| Command::new(t).arg("-V").output().is_ok())
}

/// `TcpRetransSegs` of the namespace `ns` (from its `/proc/net/snmp`).
pub fn retransmissions(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == "RetransSegs")
        .unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}
