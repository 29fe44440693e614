//! A namespace standing in for a node in packet tests: `nc` (198.18.0.1/24, towards clients) and `nb`
//! (198.18.1.1/24, towards backends; permanent neighbours 198.18.1.2 and 198.18.1.3 behind it, so
//! `bpf_fib_lookup` resolves both backends without any traffic), each a veth whose peer stays in the
//! namespace, and IP forwarding on. Deleted on drop.

use std::process::Command;

use super::lab::run;

/// The backends' neighbour entries: address and MAC.
pub const BACKEND_NEIGHBOURS: [(&str, &str); 2] = [
    ("198.18.1.2", "02:00:00:00:01:02"),
    ("198.18.1.3", "02:00:00:00:01:03"),
];

/// The namespace (its name is the prefix given to [`RoutedNode::create`] and the process id).
pub struct RoutedNode {
    pub ns: String,
}

impl RoutedNode {
    pub fn create(prefix: &str) -> RoutedNode {
        let node = RoutedNode {
            ns: format!("{prefix}-{}", std::process::id()),
        };
        let ns = node.ns.as_str();
        run(&["ip", "netns", "add", ns]);
        for (dev, peer, addr) in [("nc", "pc", "198.18.0.1/24"), ("nb", "pb", "198.18.1.1/24")] {
            run(&[
                "ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", peer,
            ]);
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", peer, "up"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        for (addr, mac) in BACKEND_NEIGHBOURS {
            run(&[
                "ip",
                "-n",
                ns,
                "neigh",
                "add",
                addr,
                "lladdr",
                mac,
                "dev",
                "nb",
                "nud",
                "permanent",
            ]);
        }
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        node
    }
}

impl Drop for RoutedNode {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}
