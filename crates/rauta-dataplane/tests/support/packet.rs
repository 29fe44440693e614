//! Packets for BPF tests: build them field by field, parse the program's output back.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// RFC 1071 sum of `bytes` (odd length padded with zero), not folded.
pub fn sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    sum(&src.octets()) + sum(&dst.octets()) + u32::from(proto) + len as u32
}

/// A TCP/IPv4 packet under construction; every field can be set, checksums are computed by `build`.
#[derive(Clone, Debug)]
pub struct Tcp4 {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub ip_id: u16,
    /// Flags and fragment offset field (0x4000 = DF).
    pub frag_off: u16,
    pub ip_options: Vec<u8>,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub tcp_options: Vec<u8>,
    pub payload: Vec<u8>,
    /// Overrides the data offset (in 32-bit words) for malformed packets.
    pub doff_override: Option<u8>,
    /// XORed into the computed TCP checksum (non-zero = bad checksum).
    pub tcp_csum_xor: u16,
    /// Ethernet padding after the IP packet (short frames on a real wire are padded to 60 bytes).
    pub eth_padding: usize,
}

impl Tcp4 {
    /// A SYN from 198.18.0.2:40000 to `dst:dport`, with the options a Linux client sends (MSS 1460,
    /// SACK-permitted, timestamps, window scale 7).
    pub fn syn(dst: Ipv4Addr, dport: u16) -> Self {
        Tcp4 {
            src_mac: CLIENT_MAC,
            dst_mac: SERVER_MAC,
            src: Ipv4Addr::new(198, 18, 0, 2),
            dst,
            ttl: 64,
            ip_id: 0x1234,
            frag_off: 0x4000,
            ip_options: Vec::new(),
            sport: 40000,
            dport,
            seq: 0x0102_0304,
            ack: 0,
            flags: SYN,
            window: 64240,
            tcp_options: linux_syn_options(1460),
            payload: Vec::new(),
            doff_override: None,
            tcp_csum_xor: 0,
            eth_padding: 0,
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&self.sport.to_be_bytes());
        tcp.extend_from_slice(&self.dport.to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        let mut opts = self.tcp_options.clone();
        while !opts.len().is_multiple_of(4) {
            opts.push(0); // EOL padding
        }
        let doff = self.doff_override.unwrap_or(((20 + opts.len()) / 4) as u8);
        tcp.push(doff << 4);
        tcp.push(self.flags);
        tcp.extend_from_slice(&self.window.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(&opts);
        tcp.extend_from_slice(&self.payload);
        let csum = !fold(pseudo(self.src, self.dst, 6, tcp.len()) + sum(&tcp)) ^ self.tcp_csum_xor;
        tcp[16..18].copy_from_slice(&csum.to_be_bytes());

        let mut ip_opts = self.ip_options.clone();
        while !ip_opts.len().is_multiple_of(4) {
            ip_opts.push(0);
        }
        let ihl = (20 + ip_opts.len()) / 4;
        let tot_len = (ihl * 4 + tcp.len()) as u16;
        let mut ip = vec![0x40 | ihl as u8, 0];
        ip.extend_from_slice(&tot_len.to_be_bytes());
        ip.extend_from_slice(&self.ip_id.to_be_bytes());
        ip.extend_from_slice(&self.frag_off.to_be_bytes());
        ip.extend_from_slice(&[self.ttl, 6, 0, 0]);
        ip.extend_from_slice(&self.src.octets());
        ip.extend_from_slice(&self.dst.octets());
        ip.extend_from_slice(&ip_opts);
        let ip_csum = !fold(sum(&ip));
        ip[10..12].copy_from_slice(&ip_csum.to_be_bytes());

        let mut frame = ethernet(self.dst_mac, self.src_mac, [0x08, 0x00]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&tcp);
        frame.extend(std::iter::repeat_n(0u8, self.eth_padding));
        frame
    }
}

/// MSS, SACK-permitted, timestamps, NOP, window scale 7: what Linux puts in a SYN (20 bytes).
pub fn linux_syn_options(mss: u16) -> Vec<u8> {
    let m = mss.to_be_bytes();
    vec![
        2, 4, m[0], m[1], 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ]
}

pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: [u8; 2]) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype);
    f
}

/// A UDP/IPv4 datagram from 198.18.0.2:40000 to `dst:dport` with an 8-byte payload.
pub fn udp4(dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let src = Ipv4Addr::new(198, 18, 0, 2);
    let mut udp = Vec::new();
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&16u16.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(b"datagram");
    let csum = !fold(pseudo(src, dst, 17, udp.len()) + sum(&udp));
    udp[6..8].copy_from_slice(&csum.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 36, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = !fold(sum(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = ethernet(SERVER_MAC, CLIENT_MAC, [0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp);
    f
}

/// A TCP SYN over IPv6 (2001:db8::2 -> 2001:db8::1, port `dport`) with an MSS option.
pub fn syn6(dport: u16) -> Vec<u8> {
    let src: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let dst: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&40000u16.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&7u32.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.extend_from_slice(&[6 << 4, SYN, 0xfd, 0x20, 0, 0, 0, 0, 2, 4, 0x05, 0xa0]);
    let ps = sum(&src) + sum(&dst) + tcp.len() as u32 + 6;
    let csum = !fold(ps + sum(&tcp));
    tcp[16..18].copy_from_slice(&csum.to_be_bytes());
    let mut f = ethernet(SERVER_MAC, CLIENT_MAC, [0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[6, 64]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&tcp);
    f
}

/// A parsed Ethernet/IPv4/TCP frame (panics on anything else: test code).
#[derive(Debug)]
pub struct Parsed {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub ethertype: [u8; 2],
    pub ihl: u8,
    pub tot_len: u16,
    pub ip_id: u16,
    pub frag_off: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ip_csum_ok: bool,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub doff: u8,
    pub flags: u8,
    pub window: u16,
    pub urg: u16,
    pub tcp_options: Vec<u8>,
    pub payload_len: usize,
    pub tcp_csum_ok: bool,
}

pub fn parse(frame: &[u8]) -> Parsed {
    assert!(
        frame.len() >= 54,
        "frame too short to parse: {} bytes",
        frame.len()
    );
    let ip = &frame[14..];
    let ihl = ip[0] & 0xf;
    let tot_len = u16::from_be_bytes([ip[2], ip[3]]);
    assert!(
        14 + tot_len as usize <= frame.len(),
        "IP length past the frame"
    );
    let ip_hdr = &ip[..ihl as usize * 4];
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let tcp = &ip[ihl as usize * 4..tot_len as usize];
    let doff = tcp[12] >> 4;
    Parsed {
        eth_dst: frame[0..6].try_into().unwrap(),
        eth_src: frame[6..12].try_into().unwrap(),
        ethertype: [frame[12], frame[13]],
        ihl,
        tot_len,
        ip_id: u16::from_be_bytes([ip[4], ip[5]]),
        frag_off: u16::from_be_bytes([ip[6], ip[7]]),
        ttl: ip[8],
        protocol: ip[9],
        src,
        dst,
        ip_csum_ok: fold(sum(ip_hdr)) == 0xffff,
        sport: u16::from_be_bytes([tcp[0], tcp[1]]),
        dport: u16::from_be_bytes([tcp[2], tcp[3]]),
        seq: u32::from_be_bytes(tcp[4..8].try_into().unwrap()),
        ack: u32::from_be_bytes(tcp[8..12].try_into().unwrap()),
        doff,
        flags: tcp[13],
        window: u16::from_be_bytes([tcp[14], tcp[15]]),
        urg: u16::from_be_bytes([tcp[18], tcp[19]]),
        tcp_options: tcp[20..doff as usize * 4].to_vec(),
        payload_len: tcp.len() - doff as usize * 4,
        tcp_csum_ok: fold(pseudo(src, dst, 6, tcp.len()) + sum(tcp)) == 0xffff,
    }
}

/// A readable byte diff for assertion messages: offsets and both values of every differing byte.
pub fn diff(expected: &[u8], actual: &[u8]) -> String {
    let mut out = format!("expected {} bytes, got {}\n", expected.len(), actual.len());
    for i in 0..expected.len().max(actual.len()) {
        let (e, a) = (expected.get(i), actual.get(i));
        if e != a {
            let _ = writeln!(out, "  byte {i:3}: expected {e:02x?}, got {a:02x?}");
        }
    }
    out
}
