//! The TC (clsact egress) program: the listener's side of the hand-off and of handed-off flows.

pub mod egress;
pub mod ingress;
pub mod old_leg;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    programs::TcContext,
};
use rauta_common::reason::Reason;

/// What to do with a packet at TC and why.
pub struct TcVerdict {
    /// The TC action (`TC_ACT_*`, or what `bpf_redirect` returned).
    pub action: i32,
    /// The reason counted for it.
    pub reason: Reason,
}

impl TcVerdict {
    /// Let the packet continue (out of the interface).
    #[inline(always)]
    pub const fn ok(reason: Reason) -> Self {
        TcVerdict {
            action: TC_ACT_OK,
            reason,
        }
    }

    /// Drop the packet.
    #[inline(always)]
    pub const fn shot(reason: Reason) -> Self {
        TcVerdict {
            action: TC_ACT_SHOT,
            reason,
        }
    }
}

/// Offset of the IPv4 header in an Ethernet frame.
pub const IP_AT: usize = 14;
/// Offset of the TCP header behind an IPv4 header without options.
pub const TCP_AT: usize = 34;
/// Ethernet + IPv4 + TCP without options.
pub const HEADERS: usize = 54;

/// The frame's first [`HEADERS`] bytes, if it is IPv4 without options carrying TCP (the only packets both
/// TC programs act on).
#[inline(always)]
pub fn tcp_v4_headers(ctx: &TcContext) -> Option<[u8; HEADERS]> {
    let h = ctx.load::<[u8; HEADERS]>(0).ok()?;
    if h[12..14] != [0x08, 0x00] || h[IP_AT] != 0x45 || h[IP_AT + 9] != 6 {
        return None;
    }
    Some(h)
}

/// Four bytes of `h` from `at`.
#[inline(always)]
pub fn field4(h: &[u8; HEADERS], at: usize) -> [u8; 4] {
    [h[at], h[at + 1], h[at + 2], h[at + 3]]
}

/// Two bytes of `h` from `at`.
#[inline(always)]
pub fn field2(h: &[u8; HEADERS], at: usize) -> [u8; 2] {
    [h[at], h[at + 1]]
}
