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

use crate::checksum::{add_words_at, fold, pseudo_header_v4, IPPROTO_TCP};
use crate::synack::{write_syn_frame_words, SynV4, TCP_ACK, TCP_SYN};
use crate::tcpopt::{ACK_OPTIONS_LEN, SYN_OPTIONS_LEN};

/// Length of the replayed SYN: Ethernet (14) + IPv4 (20) + TCP (20) with the SYN options
/// ([`SYN_OPTIONS_LEN`]).
pub const REPLAY_SYN_V4_LEN: usize = 14 + 20 + SYN_TCP_LEN;
/// Length of the headers of the hand-off ACK: Ethernet (14) + IPv4 (20) + TCP (20) with
/// [`ACK_OPTIONS_LEN`] bytes of options (timestamps, or NOPs). The stored payload follows them.
pub const HANDOFF_ACK_V4_HEADERS: usize = 14 + 20 + ACK_TCP_LEN;
/// TCP header length of the SYNs Tier 1 builds.
pub const SYN_TCP_LEN: usize = 20 + SYN_OPTIONS_LEN;
/// TCP header length of the ACKs Tier 1 builds.
pub const ACK_TCP_LEN: usize = 20 + ACK_OPTIONS_LEN;
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

/// The MSS the kernel encodes as index 0 of its cookie table (`msstab[0]`): a probe SYN with this MSS
/// yields the cookie [`decode_cookie_mss`] compares against.
pub const COOKIE_PROBE_MSS: u16 = 536;

/// What a client's cookie says, decoded against `probe`, the cookie the kernel generates *now* for the
/// same 4-tuple and ISN with an MSS of [`COOKIE_PROBE_MSS`] (table index 0). One generation both
/// validates and decodes: `Some(mss)` if `cookie` is exactly what the kernel issues in the current minute
/// for one of its four MSS values (the kernel's own check accepts no more in that minute, so this is
/// as hard to forge), `None` otherwise — a forgery, or a cookie of an earlier minute (the caller then
/// asks the kernel's check, which accepts two minutes, and does without the MSS).
///
/// Why it works (`net/ipv4/syncookies.c`): a cookie is `H0 + isn + (minute << 24) + ((H1 + mss_index)
/// & 0xffffff)`, with `H0`, `H1` keyed hashes of the 4-tuple (`H1` also of the minute). Against the
/// probe of the same minute the difference is `((H1 + k) & M) - (H1 & M)`, i.e. exactly `k` unless the
/// 24-bit part wrapped (a 3-in-16-million case that then reads as "earlier minute": safe). A cookie of
/// an earlier minute differs by at least `-(1 << 24)` plus a 24-bit remainder: never below 4.
pub const fn decode_cookie_mss(cookie: u32, probe: u32) -> Option<u16> {
    // The kernel's table is smallest first (COOKIE_MSS_TABLE is largest first). A match, not an index
    // into the table: LLVM turns an indexed read into a form the BPF verifier cannot bound.
    match cookie.wrapping_sub(probe) {
        0 => Some(COOKIE_MSS_TABLE[3]),
        1 => Some(COOKIE_MSS_TABLE[2]),
        2 => Some(COOKIE_MSS_TABLE[1]),
        3 => Some(COOKIE_MSS_TABLE[0]),
        _ => None,
    }
}

/// The offset between the listener's ISN and the cookie the client knows: a sequence number of the
/// listener's is the client's plus this (wrapping). 0 when the listener issued the very same cookie.
pub const fn seq_offset(listener_isn: u32, cookie: u32) -> u32 {
    listener_isn.wrapping_sub(cookie)
}

/// The header fields of a TCP/IPv4 frame Tier 1 builds. Addresses and ports as the octets sit in the
/// packet; seq and ack in host order.
pub struct FrameFields {
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// IPv4 source.
    pub src_ip: [u8; 4],
    /// IPv4 destination.
    pub dst_ip: [u8; 4],
    /// TCP source port.
    pub src_port: [u8; 2],
    /// TCP destination port.
    pub dst_port: [u8; 2],
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// TCP flags.
    pub flags: u8,
    /// Window.
    pub window: u16,
}

/// Writes the headers of a TCP/IPv4 frame into `frame` in place (no temporaries: the BPF stack is 512
/// bytes): Ethernet, IPv4 (no options, DF, id 0, TTL [`HANDOFF_TTL`], checksum complete), TCP with
/// `options` (`O` a multiple of 4). The TCP checksum covers `payload_len` bytes that follow the headers
/// through `payload_sum` (their one's-complement sum of big-endian words, folded), so the frame is
/// complete once the payload follows.
#[inline(always)]
pub fn write_tcp_frame<const N: usize, const O: usize>(
    frame: &mut [u8; N],
    f: &FrameFields,
    options: &[u8; O],
    payload_len: u16,
    payload_sum: u16,
) {
    let tcp_len = (20 + O) as u16;
    let mut i = 0;
    while i < 6 {
        put(frame, i, f.dst_mac[i]);
        put(frame, 6 + i, f.src_mac[i]);
        i += 1;
    }
    put(frame, 12, 0x08);
    put(frame, 13, 0x00);
    let tot = (20 + tcp_len + payload_len).to_be_bytes();
    let ip = [
        0x45,
        0,
        tot[0],
        tot[1],
        0,
        0,
        0x40,
        0,
        HANDOFF_TTL,
        IPPROTO_TCP,
        0,
        0,
    ];
    copy_into(frame, 14, &ip);
    copy_into(frame, 26, &f.src_ip);
    copy_into(frame, 30, &f.dst_ip);
    let ip_csum = (!fold(add_words_at(0, frame, 14, 20))).to_be_bytes();
    put(frame, 24, ip_csum[0]);
    put(frame, 25, ip_csum[1]);

    copy_into(frame, 34, &f.src_port);
    copy_into(frame, 36, &f.dst_port);
    copy_into(frame, 38, &f.seq.to_be_bytes());
    copy_into(frame, 42, &f.ack.to_be_bytes());
    put(frame, 46, ((tcp_len / 4) as u8) << 4);
    put(frame, 47, f.flags);
    copy_into(frame, 48, &f.window.to_be_bytes());
    copy_into(frame, 50, &[0u8; 4]);
    copy_into(frame, 54, options);
    let sum = add_words_at(
        pseudo_header_v4(f.src_ip, f.dst_ip, tcp_len + payload_len) + u32::from(payload_sum),
        frame,
        34,
        tcp_len as usize,
    );
    let csum = (!fold(sum)).to_be_bytes();
    put(frame, 50, csum[0]);
    put(frame, 51, csum[1]);
}

/// `frame[at] = value`, if `at` is inside the frame.
#[inline(always)]
fn put<const N: usize>(frame: &mut [u8; N], at: usize, value: u8) {
    if let Some(b) = frame.get_mut(at) {
        *b = value;
    }
}

/// The header fields of a frame from the client to us.
#[inline(always)]
fn from_client(flow: &SynV4, seq: u32, ack: u32, flags: u8, window: u16) -> FrameFields {
    FrameFields {
        dst_mac: flow.server_mac,
        src_mac: flow.client_mac,
        src_ip: flow.client_ip,
        dst_ip: flow.server_ip,
        src_port: flow.client_port,
        dst_port: flow.server_port,
        seq,
        ack,
        flags,
        window,
    }
}

/// Writes the SYN the client would have sent the listener: from `flow.client_*` to `flow.server_*`,
/// seq = `flow.client_seq` (the client's ISN), ack 0, flags SYN, `window`, and `options` (from
/// [`crate::tcpopt::syn_options`]: exactly what Tier 1 agreed with the client, so that the listener or
/// backend agrees to nothing the client does not know). Both checksums complete: the stack verifies a
/// packet that arrives without checksum offload.
#[inline(always)]
pub fn build_replay_syn_v4(
    flow: &SynV4,
    window: u16,
    options: &[u8; SYN_OPTIONS_LEN],
    frame: &mut [u8; REPLAY_SYN_V4_LEN],
) {
    let f = from_client(flow, flow.client_seq, 0, TCP_SYN, window);
    write_tcp_frame(frame, &f, options, 0, 0);
}

/// The replayed SYN's length in 16-bit words.
pub const REPLAY_SYN_V4_WORDS: usize = REPLAY_SYN_V4_LEN / 2;

// One word writer serves the replayed SYN and the SYN-ACK: the same frame size.
const _: () = assert!(REPLAY_SYN_V4_LEN == crate::maps::SYNACK_V4_LEN);

/// [`build_replay_syn_v4`] as 16-bit words in memory order (each word holds two frame bytes as this
/// machine stores them): the same bytes (a test compares them). The XDP programs write it over the
/// packet where it lies, whose fields all sit at even offsets: 37 word stores and both checksums summed
/// from the values in registers, instead of 74 byte stores into a buffer, the frame read back byte by
/// byte for the sums, and a helper call storing it.
#[inline(always)]
pub fn build_replay_syn_v4_words(
    flow: &SynV4,
    window: u16,
    options: &[u8; SYN_OPTIONS_LEN],
    frame: &mut [u16; REPLAY_SYN_V4_WORDS],
) {
    let head = from_client(flow, flow.client_seq, 0, TCP_SYN, window);
    write_syn_frame_words(&head, HANDOFF_TTL, options, frame);
}

/// Writes the headers of the client's ACK that completes the replayed handshake and carries the stored
/// first segment: seq = ISN + 1, ack = `ack` (the listener's ISN + 1), `flags` (ACK plus the first
/// segment's PSH/FIN), `window`, `options` (from [`crate::tcpopt::ack_options`]). `payload_sum` is the
/// one's-complement sum of the payload's big-endian 16-bit words, folded to 16 bits (odd length padded
/// with a zero byte); the TCP checksum covers the payload through it, so it is complete once the
/// payload follows these headers.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one per header field the callers vary; a struct would cost BPF stack
pub fn build_handoff_ack_v4(
    flow: &SynV4,
    ack: u32,
    window: u16,
    flags: u8,
    payload_len: u16,
    payload_sum: u16,
    options: &[u8; ACK_OPTIONS_LEN],
    frame: &mut [u8; HANDOFF_ACK_V4_HEADERS],
) {
    let f = from_client(
        flow,
        flow.client_seq.wrapping_add(1),
        ack,
        flags | TCP_ACK,
        window,
    );
    write_tcp_frame(frame, &f, options, payload_len, payload_sum);
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

    /// The in-place builder writes the generic writer's replayed SYN, byte for byte, for any fields.
    #[test]
    fn replayed_syn_words_are_the_generic_frame_byte_for_byte() {
        let mut next = crate::test_rng::xorshift(0x51ed_2701_3c6e_f372u64);
        for round in 0..2000 {
            let r = next().to_le_bytes();
            let q = next().to_le_bytes();
            let flow = SynV4 {
                client_mac: [q[4], q[5], q[6], q[7], r[0], r[1]],
                server_mac: [r[2], r[3], q[0], q[1], r[6], r[7]],
                client_ip: [r[0], r[1], r[2], r[3]],
                server_ip: [r[4], r[5], r[6], r[7]],
                client_port: [q[0], q[1]],
                server_port: [q[2], q[3]],
                // Edge values of the ISN first, then random ones.
                client_seq: match round {
                    0 => u32::MAX,
                    1 => 0,
                    _ => next() as u32,
                },
            };
            let window = if round < 2 { u16::MAX } else { next() as u16 };
            let agreed = crate::tcpopt::Agreed {
                wscale: (next() % 16) as u8,
                sack: (next() % 2) as u8,
                ts: (next() % 2) as u8,
                _pad: 0,
            };
            let options = crate::tcpopt::syn_options(
                COOKIE_MSS_TABLE[round % 4],
                &agreed,
                agreed.wscale,
                (next() as u32, 0),
            );
            let mut words = [0x5555u16; REPLAY_SYN_V4_WORDS];
            build_replay_syn_v4_words(&flow, window, &options, &mut words);
            let mut ours = [0u8; REPLAY_SYN_V4_LEN];
            for (i, w) in words.iter().enumerate() {
                ours[2 * i..2 * i + 2].copy_from_slice(&w.to_ne_bytes());
            }
            let mut generic = [0xaau8; REPLAY_SYN_V4_LEN];
            build_replay_syn_v4(&flow, window, &options, &mut generic);
            assert_eq!(ours, generic, "round {round}");
        }
    }
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
        let all = crate::tcpopt::Agreed {
            wscale: 7,
            sack: 1,
            ts: 1,
            _pad: 0,
        };
        let options = crate::tcpopt::syn_options(1300, &all, 7, (0x0a0b_0c0d, 0));
        build_replay_syn_v4(&flow(), 64240, &options, &mut f);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 1], "to us");
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 2], "from the client");
        assert_eq!(&f[26..30], &[198, 18, 0, 2]);
        assert_eq!(&f[30..34], &[198, 18, 0, 1]);
        assert_eq!(&f[34..36], &40000u16.to_be_bytes());
        assert_eq!(&f[36..38], &80u16.to_be_bytes());
        assert_eq!(&f[38..42], &0xffff_ffffu32.to_be_bytes());
        assert_eq!(&f[42..46], &[0; 4]);
        assert_eq!(f[46], 10 << 4);
        assert_eq!(f[47], TCP_SYN);
        assert_eq!(&f[48..50], &64240u16.to_be_bytes());
        assert_eq!(&f[54..74], &options);
        assert!(ipv4_header_ok(&f[14..34].try_into().unwrap()));
        let mut seg = [0u8; 60];
        seg[..SYN_TCP_LEN].copy_from_slice(&f[34..34 + SYN_TCP_LEN]);
        assert!(tcp_v4_ok(
            [198, 18, 0, 2],
            [198, 18, 0, 1],
            &seg,
            SYN_TCP_LEN
        ));
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
                &crate::tcpopt::ack_options(Some((1, 2))),
                &mut h,
            );
            let mut frame = h.to_vec();
            frame.extend_from_slice(payload);
            assert!(ipv4_header_ok(&frame[14..34].try_into().unwrap()));
            assert_eq!(
                u16::from_be_bytes([frame[16], frame[17]]) as usize,
                20 + ACK_TCP_LEN + payload.len()
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

    /// A model of the kernel's cookie (`secure_tcp_syn_cookie`) with made-up hash values.
    fn kernel_cookie(h0: u32, h1: u32, isn: u32, minute: u32, index: u32) -> u32 {
        h0.wrapping_add(isn)
            .wrapping_add(minute << 24)
            .wrapping_add(h1.wrapping_add(index) & 0x00ff_ffff)
    }

    #[test]
    fn one_probe_decodes_every_mss_of_the_current_minute() {
        for (h0, h1) in [(0u32, 0u32), (0xdead_beef, 0x0012_3456), (7, 0x00ff_fff0)] {
            let probe = kernel_cookie(h0, h1, 99, 5, 0);
            for (index, mss) in [(0, 536), (1, 1300), (2, 1440), (3, 1460)] {
                let cookie = kernel_cookie(h0, h1, 99, 5, index);
                assert_eq!(
                    decode_cookie_mss(cookie, probe),
                    Some(mss),
                    "{h1:#x} {index}"
                );
            }
        }
    }

    #[test]
    fn earlier_minutes_forgeries_and_wraps_do_not_decode() {
        let (h0, isn) = (0x1234_5678, 1000);
        let probe = kernel_cookie(h0, 0x0000_0010, isn, 9, 0);
        for h1_earlier in [0u32, 0x10, 0x11, 0x00ff_ffff, 0x0080_0000] {
            for index in 0..4 {
                for minute in [8, 7] {
                    let old = kernel_cookie(h0, h1_earlier, isn, minute, index);
                    assert_eq!(decode_cookie_mss(old, probe), None);
                }
            }
        }
        assert_eq!(decode_cookie_mss(probe.wrapping_add(4), probe), None);
        assert_eq!(decode_cookie_mss(probe.wrapping_sub(1), probe), None);
        // The 24-bit part wraps (H1 & M + index >= 2^24): not decoded, the caller falls back.
        let probe = kernel_cookie(h0, 0x00ff_ffff, isn, 9, 0);
        assert_eq!(
            decode_cookie_mss(kernel_cookie(h0, 0x00ff_ffff, isn, 9, 1), probe),
            None
        );
    }

    #[test]
    fn offset_wraps() {
        assert_eq!(seq_offset(5, 10), 5u32.wrapping_sub(10));
        assert_eq!(10u32.wrapping_add(seq_offset(5, 10)), 5);
        assert_eq!(seq_offset(7, 7), 0);
    }
}
