//! The decisions of the XDP program.

pub mod ack;
pub mod classify;
pub mod flow;
pub mod handoff;
pub mod route;
pub mod splice;
pub mod syn;

use rauta_common::reason::Reason;

/// What to do with a packet and why.
pub struct Verdict {
    /// The XDP action.
    pub action: u32,
    /// The reason counted for it.
    pub reason: Reason,
}

/// [`Verdict::action`] meaning "a SYN to the VIP: tail-call the SYN program" (not an XDP action).
pub const TAIL_CALL_SYN: u32 = u32::MAX;

impl Verdict {
    /// Pass the packet to the stack.
    #[inline(always)]
    pub const fn pass(reason: Reason) -> Self {
        Verdict {
            action: aya_ebpf::bindings::xdp_action::XDP_PASS,
            reason,
        }
    }

    /// Drop the packet.
    #[inline(always)]
    pub const fn drop(reason: Reason) -> Self {
        Verdict {
            action: aya_ebpf::bindings::xdp_action::XDP_DROP,
            reason,
        }
    }

    /// Send the (rewritten) packet back out of the interface it came from.
    #[inline(always)]
    pub const fn tx(reason: Reason) -> Self {
        Verdict {
            action: aya_ebpf::bindings::xdp_action::XDP_TX,
            reason,
        }
    }
}
