//! The SYN-cookie SYN-ACK, built as a whole frame from the fields of the client's SYN.
//!
//! A pure function over fixed-size arrays: the XDP program calls it with the cookie the kernel helper
//! generated and writes the result over the packet; host tests check the same bytes.
//!
//! What it offers: the MSS of the cookie, and, when the client offered timestamps, SACK-permitted,
//! timestamps and window scaling as `crate::tcpopt` explains (the options come in as bytes from
//! [`crate::tcpopt::syn_options`]).
#![forbid(unsafe_code)]

use crate::checksum::{add_words, fold, IPPROTO_TCP};
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
/// ack = client ISN + 1, flags SYN|ACK, window [`SYNACK_WINDOW`], one MSS option of `mss`, IPv4 TTL
/// [`SYNACK_TTL`] with DF and id 0, both checksums complete (no offload is assumed). `options` are the
/// SYN-ACK's options (MSS first: see [`crate::tcpopt::syn_options`]).
///
/// The same bytes as [`crate::handoff::write_tcp_frame`] writes for these fields (a test compares them),
/// but the XDP program calls this on the packet itself, where the SYN lies: so both checksums are
/// summed from the values in registers and never read back from the frame (byte loads from packet
/// memory, and twice the stores, are most of what building the frame cost).
#[inline(always)]
pub fn build_synack_v4(
    syn: &SynV4,
    cookie: u32,
    options: &[u8; SYN_OPTIONS_LEN],
    frame: &mut [u8; SYNACK_V4_LEN],
) {
    let ack = syn.client_seq.wrapping_add(1);
    let (seq_b, ack_b) = (cookie.to_be_bytes(), ack.to_be_bytes());
    let tcp_len = (20 + SYN_OPTIONS_LEN) as u16;
    let tot = 20 + tcp_len;
    let doff = ((tcp_len / 4) as u8) << 4;
    let flags = TCP_SYN | TCP_ACK;

    let mut i = 0;
    while i < 6 {
        frame[i] = syn.client_mac[i];
        frame[6 + i] = syn.server_mac[i];
        i += 1;
    }
    frame[12] = 0x08;
    frame[13] = 0x00;
    let tot_b = tot.to_be_bytes();
    let ip_fixed = [
        0x45,
        0,
        tot_b[0],
        tot_b[1],
        0,
        0,
        0x40,
        0,
        SYNACK_TTL,
        IPPROTO_TCP,
    ];
    let mut i = 0;
    while i < 10 {
        frame[14 + i] = ip_fixed[i];
        i += 1;
    }
    let mut i = 0;
    while i < 4 {
        frame[26 + i] = syn.server_ip[i];
        frame[30 + i] = syn.client_ip[i];
        frame[38 + i] = seq_b[i];
        frame[42 + i] = ack_b[i];
        i += 1;
    }
    frame[34] = syn.server_port[0];
    frame[35] = syn.server_port[1];
    frame[36] = syn.client_port[0];
    frame[37] = syn.client_port[1];
    frame[46] = doff;
    frame[47] = flags;
    let window = SYNACK_WINDOW.to_be_bytes();
    frame[48] = window[0];
    frame[49] = window[1];
    frame[52] = 0;
    frame[53] = 0;
    let mut i = 0;
    while i < SYN_OPTIONS_LEN {
        frame[54 + i] = options[i];
        i += 1;
    }

    // The addresses are summed once for both checksums (the pseudo-header has them too).
    let addresses = word(syn.server_ip[0], syn.server_ip[1])
        + word(syn.server_ip[2], syn.server_ip[3])
        + word(syn.client_ip[0], syn.client_ip[1])
        + word(syn.client_ip[2], syn.client_ip[3]);
    let ip_sum = add_words(
        addresses + word(ip_fixed[8], ip_fixed[9]),
        &[
            ip_fixed[0],
            ip_fixed[1],
            ip_fixed[2],
            ip_fixed[3],
            ip_fixed[4],
            ip_fixed[5],
            ip_fixed[6],
            ip_fixed[7],
        ],
    );
    let ip_csum = (!fold(ip_sum)).to_be_bytes();
    frame[24] = ip_csum[0];
    frame[25] = ip_csum[1];

    let header = addresses
        + u32::from(IPPROTO_TCP)
        + u32::from(tcp_len)
        + word(syn.server_port[0], syn.server_port[1])
        + word(syn.client_port[0], syn.client_port[1])
        + (cookie >> 16)
        + (cookie & 0xffff)
        + (ack >> 16)
        + (ack & 0xffff)
        + word(doff, flags)
        + u32::from(SYNACK_WINDOW);
    let tcp_csum = (!fold(add_words(header, options))).to_be_bytes();
    frame[50] = tcp_csum[0];
    frame[51] = tcp_csum[1];
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
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
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
