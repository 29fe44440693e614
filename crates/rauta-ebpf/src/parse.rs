//! Packet headers and bounds-checked access to them.
//!
//! The header structs are byte arrays with alignment 2: the 14-byte Ethernet header leaves every later
//! 32-bit field only 2-byte aligned, so the BPF target must not emit 32-bit loads, but packet data starts
//! at least 2-byte aligned (XDP headroom) and the headers are only ever read at offsets 0, 14 and 34,
//! so 16-bit loads are safe. With alignment 1 every header copy and every field was read byte by byte
//! (a load, a shift, an or and a stack spill per byte: most of an established segment's instructions).
//! Every access goes through [`ptr_at`], which checks `start + offset + size <= end` — the form the
//! verifier follows.

use aya_ebpf::programs::XdpContext;

/// Ethernet header length.
pub const ETH_LEN: usize = 14;
/// IPv4 header length without options.
pub const IPV4_LEN: usize = 20;
/// TCP header length without options.
pub const TCP_LEN: usize = 20;

/// EtherType of IPv4, as it sits in the packet.
pub const ETH_P_IP: [u8; 2] = [0x08, 0x00];
/// EtherType of IPv6, as it sits in the packet.
pub const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];

/// An Ethernet II header.
#[repr(C, align(2))]
#[derive(Clone, Copy)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ethertype: [u8; 2],
}

/// An IPv4 header without options.
#[repr(C, align(2))]
#[derive(Clone, Copy)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub tot_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub protocol: u8,
    pub check: [u8; 2],
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
}

/// A TCP header without options.
#[repr(C, align(2))]
#[derive(Clone, Copy)]
pub struct TcpHdr {
    pub source: [u8; 2],
    pub dest: [u8; 2],
    pub seq: [u8; 4],
    pub ack_seq: [u8; 4],
    pub doff_res: u8,
    pub flags: u8,
    pub window: [u8; 2],
    pub check: [u8; 2],
    pub urg_ptr: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<EthHdr>() == ETH_LEN);
const _: () = assert!(core::mem::size_of::<Ipv4Hdr>() == IPV4_LEN);
const _: () = assert!(core::mem::size_of::<TcpHdr>() == TCP_LEN);

/// A pointer to a `T` at `offset` bytes into the packet, or `None` if the packet is too short.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// The frame's length in bytes.
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}
