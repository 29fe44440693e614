//! The SYN-cookie SYN-ACK, built as a whole frame from the fields of the client's SYN.
//!
//! A pure function over fixed-size arrays: the XDP program calls it with the cookie the kernel helper
//! generated and writes the result over the packet; host tests check the same bytes.
//!
//! What it offers: the MSS of the cookie, and, when the client offered timestamps, SACK-permitted,
//! timestamps and window scaling as `crate::tcpopt` explains (the options come in as bytes from
//! [`crate::tcpopt::syn_options`]).
#![forbid(unsafe_code)]

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
#[inline(always)]
pub fn build_synack_v4(
    syn: &SynV4,
    cookie: u32,
    options: &[u8; SYN_OPTIONS_LEN],
    frame: &mut [u8; SYNACK_V4_LEN],
) {
    // Back to where the SYN came from.
    let f = crate::handoff::FrameFields {
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
    crate::handoff::write_tcp_frame(frame, &f, options, 0, 0);
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
