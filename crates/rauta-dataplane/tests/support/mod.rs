//! Test support: a tiny packet builder and parser (Ethernet/IPv4/IPv6/TCP/UDP with options and correct
//! checksums), and the root check every BPF test starts with. The checksum code here is written
//! independently of `rauta_common::checksum` so that the tests do not trust the code they test.
#![allow(dead_code)]

pub mod lab;
pub mod netns;
pub mod node;
pub mod options;
pub mod packet;
pub mod routes;

/// True if the test can run (effective uid 0). Without root: panics when `CI=true` (a skipped BPF test
/// must not pass in CI), else prints a skip line and returns false.
pub fn root_or_skip(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned));
    if euid.as_deref() == Some("0") {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{test}: needs root (BPF_PROG_RUN, XDP attach, netns) and CI=true: refusing to skip"
        );
    }
    println!("{test}: skipped: needs root");
    false
}
