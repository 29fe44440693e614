//! The SYN-cookie SYN-ACK, built as a whole frame from the fields of the client's SYN.
//!
//! A pure function over fixed-size arrays: the XDP program calls it with the cookie the kernel helper
//! generated and writes the result over the packet; host tests check the same bytes.
//!
//! What it offers: MSS only. Window scaling, SACK-permitted and timestamps are not offered because the
//! splice does not translate them yet (they arrive with the second part of the kernel tier); without
//! window scaling the client's view of our receive window stays at most 65535 bytes.
#![forbid(unsafe_code)]

use crate::checksum::{add_words, fold, ipv4_header, pseudo_header_v4};
use crate::maps::SYNACK_V4_LEN;

/// TTL of the SYN-ACK (Linux's default).
pub const SYNACK_TTL: u8 = 64;
/// Receive window advertised in the SYN-ACK (unscaled: no window-scale option is offered).
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
/// [`SYNACK_TTL`] with DF and id 0, both checksums complete (no offload is assumed).
#[inline(always)]
pub fn build_synack_v4(syn: &SynV4, cookie: u32, mss: u16, frame: &mut [u8; SYNACK_V4_LEN]) {
    // Ethernet: back to where the SYN came from.
    let mut eth = [0u8; 14];
    let mut i = 0;
    while i < 6 {
        eth[i] = syn.client_mac[i];
        eth[6 + i] = syn.server_mac[i];
        i += 1;
    }
    eth[12] = 0x08; // EtherType IPv4
    eth[13] = 0x00;

    let tot_len = (SYNACK_V4_LEN - 14) as u16;
    let mut ip = [
        0x45, // version 4, IHL 5: never options
        0,
        (tot_len >> 8) as u8,
        tot_len as u8,
        0,
        0, // id 0: DF is set, so the id identifies nothing
        0x40,
        0, // DF
        SYNACK_TTL,
        crate::checksum::IPPROTO_TCP,
        0,
        0,
        syn.server_ip[0],
        syn.server_ip[1],
        syn.server_ip[2],
        syn.server_ip[3],
        syn.client_ip[0],
        syn.client_ip[1],
        syn.client_ip[2],
        syn.client_ip[3],
    ];
    let ip_csum = ipv4_header(&ip).to_be_bytes();
    ip[10] = ip_csum[0];
    ip[11] = ip_csum[1];

    let seq = cookie.to_be_bytes();
    let ack = syn.client_seq.wrapping_add(1).to_be_bytes();
    let win = SYNACK_WINDOW.to_be_bytes();
    let mss = mss.to_be_bytes();
    let mut tcp = [
        syn.server_port[0],
        syn.server_port[1],
        syn.client_port[0],
        syn.client_port[1],
        seq[0],
        seq[1],
        seq[2],
        seq[3],
        ack[0],
        ack[1],
        ack[2],
        ack[3],
        6 << 4, // data offset: 6 words (20 + 4 bytes of options)
        TCP_SYN | TCP_ACK,
        win[0],
        win[1],
        0,
        0, // checksum, below
        0,
        0, // urgent pointer
        TCPOPT_MSS,
        4,
        mss[0],
        mss[1],
    ];
    let tcp_csum = (!fold(add_words(
        pseudo_header_v4(syn.server_ip, syn.client_ip, 24),
        &tcp,
    )))
    .to_be_bytes();
    tcp[16] = tcp_csum[0];
    tcp[17] = tcp_csum[1];

    let mut j = 0;
    while j < 14 {
        frame[j] = eth[j];
        j += 1;
    }
    j = 0;
    while j < 20 {
        frame[14 + j] = ip[j];
        j += 1;
    }
    j = 0;
    while j < 24 {
        frame[34 + j] = tcp[j];
        j += 1;
    }
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

    #[test]
    fn synack_swaps_endpoints_and_acknowledges_the_isn() {
        let mut f = [0u8; SYNACK_V4_LEN];
        build_synack_v4(&syn(), 0x1234_5678, 1460, &mut f);
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
        build_synack_v4(&syn(), 7, 536, &mut f);
        let ip: [u8; 20] = f[14..34].try_into().unwrap();
        assert!(ipv4_header_ok(&ip));
        let mut seg = [0u8; 60];
        seg[..24].copy_from_slice(&f[34..58]);
        assert!(tcp_v4_ok([198, 18, 0, 1], [198, 18, 0, 2], &seg, 24));
    }
}
