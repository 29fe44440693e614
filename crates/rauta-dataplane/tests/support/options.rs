//! TCP options of parsed segments, for the tests that check what Tier 1 agreed to and translated. The
//! walk is `rauta_common::tcpopt`'s (unit-tested there against hand-written option bytes).

use rauta_common::tcpopt;

use super::packet::Parsed;

/// The options of a parsed segment, in an options buffer, walked.
pub fn options_of(p: &Parsed) -> ([u8; tcpopt::OPTIONS_BUF], tcpopt::OptionWalk) {
    let mut buf = [0u8; tcpopt::OPTIONS_BUF];
    buf[..p.tcp_options.len()].copy_from_slice(&p.tcp_options);
    let walk = tcpopt::walk(&buf, p.tcp_options.len() as u32);
    (buf, walk)
}

/// NOP, NOP, timestamps (`val`, `ecr`), then NOP, NOP, SACK with one block `sack` if given: what Linux
/// puts on an established segment.
pub fn ts_options(val: u32, ecr: u32, sack: Option<(u32, u32)>) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&val.to_be_bytes());
    o.extend_from_slice(&ecr.to_be_bytes());
    if let Some((left, right)) = sack {
        o.extend_from_slice(&[1, 1, 5, 10]);
        o.extend_from_slice(&left.to_be_bytes());
        o.extend_from_slice(&right.to_be_bytes());
    }
    o
}
