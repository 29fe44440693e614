//! The hand-off of a connection to the local (Tier 3) listener by replaying its handshake.
//!
//! Tier 1 answered the client's SYN with a cookie and holds no state, so the local listener has never
//! heard of the connection. When the client's first data segment arrives, the XDP program stores it and
//! turns the packet into the SYN the client would have sent ([`build_replay_syn_v4`]: the client's own
//! address, port and ISN, to the VIP). The listener answers with a SYN-ACK, which the TC egress program
//! turns into the client's ACK carrying the stored data ([`build_handoff_ack_v4`]) and sends back into the
//! stack. The listener's socket is then established with the request queued and the real client as peer.
//!
//! With `net.ipv4.tcp_syncookies=2` the listener answers the replayed SYN with a cookie computed from the
//! same inputs as Tier 1's (same secret, 4-tuple, ISN, MSS bucket, minute), i.e. the very ISN the client
//! already knows: no translation. If the minute counter ticked in between, or the MSS bucket differs, the
//! ISNs differ by [`seq_offset`] and both directions are translated for the life of the connection.
//!
//! Pure functions over fixed-size arrays, so the BPF programs and host tests run the same code.
#![forbid(unsafe_code)]

use crate::checksum::{add_words, fold, ipv4_header, pseudo_header_v4, IPPROTO_TCP};
use crate::synack::{SynV4, TCPOPT_MSS, TCP_ACK, TCP_SYN};

/// Length of the replayed SYN: Ethernet (14) + IPv4 (20) + TCP with the MSS option only (24).
pub const REPLAY_SYN_V4_LEN: usize = 58;
/// Length of the headers of the hand-off ACK: Ethernet (14) + IPv4 (20) + TCP without options (20).
/// The stored payload follows them.
pub const HANDOFF_ACK_V4_HEADERS: usize = 54;
/// TTL of the packets Tier 1 builds.
pub const HANDOFF_TTL: u8 = 64;

/// The MSS values the kernel's SYN cookies can encode (`msstab` in `net/ipv4/syncookies.c`), largest
/// first: the order in which the XDP program tries them when decoding a cookie's MSS.
pub const COOKIE_MSS_TABLE: [u16; 4] = [1460, 1440, 1300, 536];

/// The smallest cookie MSS that can have carried a segment of `payload_len` bytes: a lower bound of the
/// MSS the client was given, used when the cookie cannot be decoded (its minute counter ticked). Too
/// small an MSS is safe (the listener sends smaller segments); too large would not be.
pub const fn mss_covering(payload_len: u32) -> u16 {
    let mut i = COOKIE_MSS_TABLE.len();
    while i > 0 {
        i -= 1;
        if COOKIE_MSS_TABLE[i] as u32 >= payload_len {
            return COOKIE_MSS_TABLE[i];
        }
    }
    COOKIE_MSS_TABLE[0]
}

/// The offset between the listener's ISN and the cookie the client knows: a sequence number of the
/// listener's is the client's plus this (wrapping). 0 when the listener issued the very same cookie.
pub const fn seq_offset(listener_isn: u32, cookie: u32) -> u32 {
    listener_isn.wrapping_sub(cookie)
}

/// Writes the IPv4 header (no options, DF, id 0, TTL [`HANDOFF_TTL`], checksum complete) of a TCP
/// segment of `tcp_len` bytes from `src` to `dst`.
#[inline(always)]
fn ipv4_tcp(src: [u8; 4], dst: [u8; 4], tcp_len: u16) -> [u8; 20] {
    let tot_len = (20 + tcp_len).to_be_bytes();
    let mut ip = [
        0x45,
        0,
        tot_len[0],
        tot_len[1],
        0,
        0,
        0x40,
        0,
        HANDOFF_TTL,
        IPPROTO_TCP,
        0,
        0,
        src[0],
        src[1],
        src[2],
        src[3],
        dst[0],
        dst[1],
        dst[2],
        dst[3],
    ];
    let csum = ipv4_header(&ip).to_be_bytes();
    ip[10] = csum[0];
    ip[11] = csum[1];
    ip
}

/// Writes an Ethernet header from the client to us.
#[inline(always)]
fn eth_to_server(flow: &SynV4) -> [u8; 14] {
    let (d, s) = (flow.server_mac, flow.client_mac);
    [
        d[0], d[1], d[2], d[3], d[4], d[5], s[0], s[1], s[2], s[3], s[4], s[5], 0x08, 0x00,
    ]
}

/// Writes the SYN the client would have sent the listener: from `flow.client_*` to `flow.server_*`,
/// seq = `flow.client_seq` (the client's ISN), ack 0, flags SYN, `window`, one MSS option of `mss` and
/// nothing else (Tier 1 offered no window scaling, SACK or timestamps, so neither may the listener).
/// Both checksums complete: the stack verifies a packet that arrives without checksum offload.
#[inline(always)]
pub fn build_replay_syn_v4(
    flow: &SynV4,
    window: u16,
    mss: u16,
    frame: &mut [u8; REPLAY_SYN_V4_LEN],
) {
    let eth = eth_to_server(flow);
    let ip = ipv4_tcp(flow.client_ip, flow.server_ip, 24);
    let (cp, sp) = (flow.client_port, flow.server_port);
    let seq = flow.client_seq.to_be_bytes();
    let win = window.to_be_bytes();
    let mss = mss.to_be_bytes();
    let mut tcp = [
        cp[0],
        cp[1],
        sp[0],
        sp[1],
        seq[0],
        seq[1],
        seq[2],
        seq[3],
        0,
        0,
        0,
        0,
        6 << 4,
        TCP_SYN,
        win[0],
        win[1],
        0,
        0,
        0,
        0,
        TCPOPT_MSS,
        4,
        mss[0],
        mss[1],
    ];
    let csum = (!fold(add_words(
        pseudo_header_v4(flow.client_ip, flow.server_ip, 24),
        &tcp,
    )))
    .to_be_bytes();
    tcp[16] = csum[0];
    tcp[17] = csum[1];
    copy_into(frame, 0, &eth);
    copy_into(frame, 14, &ip);
    copy_into(frame, 34, &tcp);
}

/// Writes the headers of the client's ACK that completes the replayed handshake and carries the stored
/// first segment: seq = ISN + 1, ack = `ack` (the listener's ISN + 1), `flags` (ACK plus the first
/// segment's PSH/FIN), `window`, no options. `payload_sum` is the one's-complement sum of the payload's
/// big-endian 16-bit words, folded to 16 bits (odd length padded with a zero byte); the TCP checksum
/// covers the payload through it, so it is complete once the payload follows these headers.
#[inline(always)]
pub fn build_handoff_ack_v4(
    flow: &SynV4,
    ack: u32,
    window: u16,
    flags: u8,
    payload_len: u16,
    payload_sum: u16,
    frame: &mut [u8; HANDOFF_ACK_V4_HEADERS],
) {
    let eth = eth_to_server(flow);
    let tcp_len = 20 + payload_len;
    let ip = ipv4_tcp(flow.client_ip, flow.server_ip, tcp_len);
    let (cp, sp) = (flow.client_port, flow.server_port);
    let seq = flow.client_seq.wrapping_add(1).to_be_bytes();
    let ack = ack.to_be_bytes();
    let win = window.to_be_bytes();
    let mut tcp = [
        cp[0],
        cp[1],
        sp[0],
        sp[1],
        seq[0],
        seq[1],
        seq[2],
        seq[3],
        ack[0],
        ack[1],
        ack[2],
        ack[3],
        5 << 4,
        flags | TCP_ACK,
        win[0],
        win[1],
        0,
        0,
        0,
        0,
    ];
    let sum = add_words(
        pseudo_header_v4(flow.client_ip, flow.server_ip, tcp_len) + u32::from(payload_sum),
        &tcp,
    );
    let csum = (!fold(sum)).to_be_bytes();
    tcp[16] = csum[0];
    tcp[17] = csum[1];
    copy_into(frame, 0, &eth);
    copy_into(frame, 14, &ip);
    copy_into(frame, 34, &tcp);
}

/// Copies `src` into `dst` at `at`; a constant-bound loop the verifier unrolls.
#[inline(always)]
fn copy_into<const D: usize, const S: usize>(dst: &mut [u8; D], at: usize, src: &[u8; S]) {
    let mut i = 0;
    while i < S {
        if at + i < D {
            dst[at + i] = src[i];
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{ipv4_header_ok, tcp_v4_ok};

    fn flow() -> SynV4 {
        SynV4 {
            client_mac: [2, 0, 0, 0, 0, 2],
            server_mac: [2, 0, 0, 0, 0, 1],
            client_ip: [198, 18, 0, 2],
            server_ip: [198, 18, 0, 1],
            client_port: 40000u16.to_be_bytes(),
            server_port: 80u16.to_be_bytes(),
            client_seq: 0xffff_ffff,
        }
    }

    /// Independent checksum of a whole TCP segment (header + payload).
    fn tcp_ok(src: [u8; 4], dst: [u8; 4], seg: &[u8]) -> bool {
        let mut sum = pseudo_header_v4(src, dst, seg.len() as u16);
        for pair in seg.chunks(2) {
            let lo = if pair.len() == 2 { pair[1] } else { 0 };
            sum += u32::from(u16::from_be_bytes([pair[0], lo]));
        }
        fold(sum) == 0xffff
    }

    #[test]
    fn replayed_syn_comes_from_the_client_with_its_isn() {
        let mut f = [0u8; REPLAY_SYN_V4_LEN];
        build_replay_syn_v4(&flow(), 64240, 1300, &mut f);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 1], "to us");
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 2], "from the client");
        assert_eq!(&f[26..30], &[198, 18, 0, 2]);
        assert_eq!(&f[30..34], &[198, 18, 0, 1]);
        assert_eq!(&f[34..36], &40000u16.to_be_bytes());
        assert_eq!(&f[36..38], &80u16.to_be_bytes());
        assert_eq!(&f[38..42], &0xffff_ffffu32.to_be_bytes());
        assert_eq!(&f[42..46], &[0; 4]);
        assert_eq!(f[46], 6 << 4);
        assert_eq!(f[47], TCP_SYN);
        assert_eq!(&f[48..50], &64240u16.to_be_bytes());
        assert_eq!(&f[54..58], &[TCPOPT_MSS, 4, 0x05, 0x14]);
        assert!(ipv4_header_ok(&f[14..34].try_into().unwrap()));
        let mut seg = [0u8; 60];
        seg[..24].copy_from_slice(&f[34..58]);
        assert!(tcp_v4_ok([198, 18, 0, 2], [198, 18, 0, 1], &seg, 24));
    }

    #[test]
    fn handoff_ack_checksum_covers_the_payload() {
        for payload in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], b"odd", b"x"] {
            let mut sum = 0u32;
            for pair in payload.chunks(2) {
                let lo = if pair.len() == 2 { pair[1] } else { 0 };
                sum += u32::from(u16::from_be_bytes([pair[0], lo]));
            }
            let mut h = [0u8; HANDOFF_ACK_V4_HEADERS];
            build_handoff_ack_v4(
                &flow(),
                0xdead_beef,
                29200,
                0x08,
                payload.len() as u16,
                fold(sum),
                &mut h,
            );
            let mut frame = h.to_vec();
            frame.extend_from_slice(payload);
            assert!(ipv4_header_ok(&frame[14..34].try_into().unwrap()));
            assert_eq!(
                u16::from_be_bytes([frame[16], frame[17]]) as usize,
                40 + payload.len()
            );
            assert!(tcp_ok([198, 18, 0, 2], [198, 18, 0, 1], &frame[34..]));
            // ISN 0xffffffff + 1 wraps to 0.
            assert_eq!(&frame[38..42], &[0; 4]);
            assert_eq!(&frame[42..46], &0xdead_beefu32.to_be_bytes());
            assert_eq!(frame[47], 0x08 | TCP_ACK);
        }
    }

    #[test]
    fn mss_covering_is_the_smallest_table_entry_that_fits() {
        assert_eq!(mss_covering(0), 536);
        assert_eq!(mss_covering(536), 536);
        assert_eq!(mss_covering(537), 1300);
        assert_eq!(mss_covering(1441), 1460);
        assert_eq!(mss_covering(9000), 1460);
    }

    #[test]
    fn offset_wraps() {
        assert_eq!(seq_offset(5, 10), 5u32.wrapping_sub(10));
        assert_eq!(10u32.wrapping_add(seq_offset(5, 10)), 5);
        assert_eq!(seq_offset(7, 7), 0);
    }
}
