//! The SYN-cookie SYN-ACK, built as a whole frame from the fields of the client's SYN.
//!
//! A pure function over fixed-size arrays: the XDP program calls it with the cookie the kernel helper
//! generated and writes the result over the packet; host tests check the same bytes.
//!
//! What it offers: the MSS of the cookie, and, when the client offered timestamps, SACK-permitted,
//! timestamps and window scaling as `crate::tcpopt` explains (the options come in as bytes from
//! [`crate::tcpopt::syn_options`]).
#![forbid(unsafe_code)]

use crate::checksum::{fold, IPPROTO_TCP};
use crate::handoff::FrameFields;
use crate::maps::SYNACK_V4_LEN;
use crate::tcpopt::SYN_OPTIONS_LEN;

/// Length of the SYN-ACK's TCP header: 20 + the options.
#[cfg(test)]
const TCP_LEN: usize = 20 + SYN_OPTIONS_LEN;

/// TTL of the SYN-ACK (Linux's default).
pub const SYNACK_TTL: u8 = 64;
/// Receive window advertised in the SYN-ACK (a SYN-ACK's window is never scaled).
pub const SYNACK_WINDOW: u16 = 65535;
/// TCP flag bits.
pub const TCP_FIN: u8 = 0x01;
/// TCP SYN flag.
pub const TCP_SYN: u8 = 0x02;
/// TCP RST flag.
pub const TCP_RST: u8 = 0x04;
/// TCP ACK flag.
pub const TCP_ACK: u8 = 0x10;
/// TCP option kind of the maximum segment size.
pub const TCPOPT_MSS: u8 = 2;

/// The fields of a client's SYN the SYN-ACK is built from. Addresses and ports are the octets as they
/// sit in the packet; the sequence number is in host order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynV4 {
    /// The client's MAC (the SYN's Ethernet source).
    pub client_mac: [u8; 6],
    /// Our MAC (the SYN's Ethernet destination).
    pub server_mac: [u8; 6],
    /// The client's IPv4 address.
    pub client_ip: [u8; 4],
    /// The VIP.
    pub server_ip: [u8; 4],
    /// The client's TCP port.
    pub client_port: [u8; 2],
    /// The VIP's TCP port.
    pub server_port: [u8; 2],
    /// The client's initial sequence number.
    pub client_seq: u32,
}

/// Writes the SYN-ACK answering `syn` into `frame`: MACs, addresses and ports swapped, seq = `cookie`,
/// ack = client ISN + 1, flags SYN|ACK, window [`SYNACK_WINDOW`], IPv4 TTL [`SYNACK_TTL`] with DF and
/// id 0, both checksums complete (no offload is assumed). `options` are the SYN-ACK's options (MSS
/// first: see [`crate::tcpopt::syn_options`]). The frame's bytes as [`build_synack_v4_words`] writes them.
pub fn build_synack_v4(
    syn: &SynV4,
    cookie: u32,
    options: &[u8; SYN_OPTIONS_LEN],
    frame: &mut [u8; SYNACK_V4_LEN],
) {
    let mut words = [0u16; SYNACK_V4_WORDS];
    build_synack_v4_words(syn, cookie, options, &mut words);
    let mut i = 0;
    while i < SYNACK_V4_WORDS {
        let b = words[i].to_ne_bytes();
        frame[2 * i] = b[0];
        frame[2 * i + 1] = b[1];
        i += 1;
    }
}

/// The SYN-ACK's length in 16-bit words.
pub const SYNACK_V4_WORDS: usize = SYNACK_V4_LEN / 2;

/// [`build_synack_v4`] as 16-bit words in memory order (each word holds two frame bytes as this
/// machine stores them), the frame's bytes the same as [`crate::handoff::write_tcp_frame`] writes for
/// these fields (a test compares them).
///
/// The XDP program writes the SYN-ACK over the SYN in the packet, whose fields all sit at even offsets:
/// 37 word stores instead of 74 byte stores and the shifts that split values into bytes; both checksums
/// are summed from the values in registers, never read back from the frame.
#[inline(always)]
pub fn build_synack_v4_words(
    syn: &SynV4,
    cookie: u32,
    options: &[u8; SYN_OPTIONS_LEN],
    frame: &mut [u16; SYNACK_V4_WORDS],
) {
    let head = FrameFields {
        dst_mac: syn.client_mac,
        src_mac: syn.server_mac,
        src_ip: syn.server_ip,
        dst_ip: syn.client_ip,
        src_port: syn.server_port,
        dst_port: syn.client_port,
        seq: cookie,
        ack: syn.client_seq.wrapping_add(1),
        flags: TCP_SYN | TCP_ACK,
        window: SYNACK_WINDOW,
    };
    write_syn_frame_words(&head, SYNACK_TTL, options, frame);
}

/// Writes the 74-byte IPv4 frame with SYN options that `head` and `ttl` describe (the SYN-ACK to a
/// client, the replayed SYN to the listener, our SYN to a backend), with `options`, as 16-bit words in memory order (each word holds
/// two frame bytes as this machine stores them). The XDP programs write it over the packet where it
/// lies, whose fields all sit at even offsets: 37 word stores instead of 74 byte stores and the shifts
/// that split values into bytes; both checksums are summed from the values in registers, never read
/// back from the frame.
#[inline(always)]
pub(crate) fn write_syn_frame_words(
    head: &FrameFields,
    ttl: u8,
    options: &[u8; SYN_OPTIONS_LEN],
    frame: &mut [u16; SYNACK_V4_WORDS],
) {
    let tcp_len = (20 + SYN_OPTIONS_LEN) as u32;
    let doff_flags = ((tcp_len / 4) << 12) | u32::from(head.flags);
    let ttl_proto = (u32::from(ttl) << 8) | u32::from(IPPROTO_TCP);
    // A big-endian word value stored in memory order.
    let put = |frame: &mut [u16; SYNACK_V4_WORDS], at: usize, value: u32| {
        frame[at] = (value as u16).to_be();
    };

    let mut i = 0;
    while i < 3 {
        put(frame, i, word(head.dst_mac[2 * i], head.dst_mac[2 * i + 1]));
        put(
            frame,
            3 + i,
            word(head.src_mac[2 * i], head.src_mac[2 * i + 1]),
        );
        i += 1;
    }
    let src_ip = [
        word(head.src_ip[0], head.src_ip[1]),
        word(head.src_ip[2], head.src_ip[3]),
    ];
    let dst_ip = [
        word(head.dst_ip[0], head.dst_ip[1]),
        word(head.dst_ip[2], head.dst_ip[3]),
    ];
    let src_port = word(head.src_port[0], head.src_port[1]);
    let dst_port = word(head.dst_port[0], head.dst_port[1]);
    let (seq, ack) = (head.seq, head.ack);
    put(frame, 6, 0x0800);
    put(frame, 7, 0x4500);
    put(frame, 8, 20 + tcp_len);
    put(frame, 9, 0);
    put(frame, 10, 0x4000);
    put(frame, 11, ttl_proto);
    put(frame, 13, src_ip[0]);
    put(frame, 14, src_ip[1]);
    put(frame, 15, dst_ip[0]);
    put(frame, 16, dst_ip[1]);
    put(frame, 17, src_port);
    put(frame, 18, dst_port);
    put(frame, 19, seq >> 16);
    put(frame, 20, seq & 0xffff);
    put(frame, 21, ack >> 16);
    put(frame, 22, ack & 0xffff);
    put(frame, 23, doff_flags);
    put(frame, 24, u32::from(head.window));
    put(frame, 26, 0);
    let mut options_sum = 0;
    let mut i = 0;
    while i < SYN_OPTIONS_LEN / 2 {
        let w = word(options[2 * i], options[2 * i + 1]);
        put(frame, 27 + i, w);
        options_sum += w;
        i += 1;
    }

    // The addresses are summed once for both checksums (the pseudo-header has them too).
    let addresses = src_ip[0] + src_ip[1] + dst_ip[0] + dst_ip[1];
    let ip_sum = addresses + 0x4500 + 20 + tcp_len + 0x4000 + ttl_proto;
    put(frame, 12, u32::from(!fold(ip_sum)));
    let tcp_sum = addresses
        + u32::from(IPPROTO_TCP)
        + tcp_len
        + src_port
        + dst_port
        + (seq >> 16)
        + (seq & 0xffff)
        + (ack >> 16)
        + (ack & 0xffff)
        + doff_flags
        + u32::from(head.window)
        + options_sum;
    put(frame, 25, u32::from(!fold(tcp_sum)));
}

/// The big-endian 16-bit word of two bytes, widened for a sum.
#[inline(always)]
const fn word(hi: u8, lo: u8) -> u32 {
    ((hi as u32) << 8) | lo as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{ipv4_header_ok, tcp_v4_ok};

    fn syn() -> SynV4 {
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

    fn mss_only(mss: u16) -> [u8; SYN_OPTIONS_LEN] {
        crate::tcpopt::syn_options(mss, &crate::tcpopt::Agreed::NONE, 0, (0, 0))
    }

    #[test]
    fn synack_swaps_endpoints_and_acknowledges_the_isn() {
        let mut f = [0u8; SYNACK_V4_LEN];
        build_synack_v4(&syn(), 0x1234_5678, &mss_only(1460), &mut f);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(&f[26..30], &[198, 18, 0, 1]);
        assert_eq!(&f[30..34], &[198, 18, 0, 2]);
        assert_eq!(&f[34..36], &80u16.to_be_bytes());
        assert_eq!(&f[36..38], &40000u16.to_be_bytes());
        assert_eq!(&f[38..42], &0x1234_5678u32.to_be_bytes());
        // ISN 0xffffffff: the acknowledgement wraps to 0.
        assert_eq!(&f[42..46], &[0, 0, 0, 0]);
        assert_eq!(f[47], TCP_SYN | TCP_ACK);
        assert_eq!(&f[54..58], &[TCPOPT_MSS, 4, 0x05, 0xb4]);
    }

    /// The SYN-ACK is the frame the generic writer makes of the same fields, byte for byte (the
    /// in-place builder sums its checksums from the fields instead of reading the frame back).
    #[test]
    fn synack_is_the_generic_frame_byte_for_byte() {
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15u64);
        for round in 0..2000 {
            let r = next().to_le_bytes();
            let q = next().to_le_bytes();
            let mut s = syn();
            s.client_ip = [r[0], r[1], r[2], r[3]];
            s.server_ip = [r[4], r[5], r[6], r[7]];
            s.client_port = [q[0], q[1]];
            s.server_port = [q[2], q[3]];
            s.client_mac = [q[4], q[5], q[6], q[7], r[0], r[1]];
            // Edge values of the ISN and the cookie first, then random ones.
            s.client_seq = match round {
                0 => u32::MAX,
                1 => 0,
                _ => next() as u32,
            };
            let cookie = if round < 2 {
                0xffff_ffff
            } else {
                next() as u32
            };
            let agreed = crate::tcpopt::Agreed {
                wscale: (next() % 16) as u8,
                sack: (next() % 2) as u8,
                ts: (next() % 2) as u8,
                _pad: 0,
            };
            let options = crate::tcpopt::syn_options(
                crate::handoff::COOKIE_MSS_TABLE[round % 4],
                &agreed,
                (next() % 16) as u8,
                (next() as u32, next() as u32),
            );
            let mut ours = [0xaau8; SYNACK_V4_LEN];
            build_synack_v4(&s, cookie, &options, &mut ours);
            let mut generic = [0u8; SYNACK_V4_LEN];
            let f = crate::handoff::FrameFields {
                dst_mac: s.client_mac,
                src_mac: s.server_mac,
                src_ip: s.server_ip,
                dst_ip: s.client_ip,
                src_port: s.server_port,
                dst_port: s.client_port,
                seq: cookie,
                ack: s.client_seq.wrapping_add(1),
                flags: TCP_SYN | TCP_ACK,
                window: SYNACK_WINDOW,
            };
            crate::handoff::write_tcp_frame(&mut generic, &f, &options, 0, 0);
            assert_eq!(ours, generic, "round {round}");
        }
    }

    #[test]
    fn synack_checksums_verify() {
        let mut f = [0u8; SYNACK_V4_LEN];
        let all = crate::tcpopt::Agreed {
            wscale: 7,
            sack: 1,
            ts: 1,
            _pad: 0,
        };
        let options = crate::tcpopt::syn_options(536, &all, 7, (0x0102_0304, 99));
        build_synack_v4(&syn(), 7, &options, &mut f);
        let ip: [u8; 20] = f[14..34].try_into().unwrap();
        assert!(ipv4_header_ok(&ip));
        let mut seg = [0u8; 60];
        seg[..TCP_LEN].copy_from_slice(&f[34..34 + TCP_LEN]);
        assert!(tcp_v4_ok([198, 18, 0, 1], [198, 18, 0, 2], &seg, TCP_LEN));
        assert_eq!(&f[54..74], &options);
    }
}
