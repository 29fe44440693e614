//! The TC (clsact egress) program: the listener's side of the hand-off and of handed-off flows.

pub mod egress;
pub mod ingress;

use aya_ebpf::bindings::{TC_ACT_OK, TC_ACT_SHOT};
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
