//! The decisions of the XDP program.

pub mod ack;
pub mod classify;
pub mod flow;
pub mod followup;
pub mod handoff;
pub mod response;
pub mod route;
pub mod scan;
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
/// [`Verdict::action`] meaning "a follow-up request, captured with its [`Resume`]: tail-call the
/// follow-up program" (not an XDP action).
pub const TAIL_CALL_FOLLOWUP: u32 = u32::MAX - 1;
/// [`Verdict::action`] meaning "a response head starts in this backend segment, described by the
/// [`Resume`]: tail-call the response program" (not an XDP action).
pub const TAIL_CALL_RESPONSE: u32 = u32::MAX - 2;

/// [`Resume::kind`]: nothing to resume.
pub const RESUME_NONE: u32 = 0;
/// [`Resume::kind`]: a follow-up request was decided ([`Resume::outcome`]).
pub const RESUME_FOLLOWUP: u32 = 1;
/// [`Resume::kind`]: a response head was parsed into the splice state.
pub const RESUME_RESPONSE: u32 = 2;

/// [`Resume::outcome`] of a follow-up: same backend, stay on the leg.
pub const FOLLOWUP_SAME: u32 = 1;
/// [`Resume::outcome`] of a follow-up: as [`FOLLOWUP_SAME`], and the request is a HEAD (its response has
/// no body whatever its length says).
pub const FOLLOWUP_SAME_HEAD: u32 = 5;
/// [`Resume::outcome`] of a follow-up: routed elsewhere, between responses (framed).
pub const FOLLOWUP_SWITCH: u32 = 2;
/// [`Resume::outcome`] of a follow-up: routed elsewhere, the client has all the backend sent
/// (unframed).
pub const FOLLOWUP_SWITCH_UNFRAMED: u32 = 3;
/// [`Resume::outcome`] of a follow-up: routed elsewhere while a response is under way.
pub const FOLLOWUP_EARLY: u32 = 4;

/// What a program tail-called for one segment (follow-up decision, response head) hands back to the
/// entry program, which runs again on the same packet: the entry recognises the segment by `kind`,
/// `flow` and `seq`, takes the outcome once and translates the segment as usual. Lives in the per-CPU
/// scratch entry: a tail call keeps the CPU, and nothing else runs on it in between.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Resume {
    /// [`RESUME_NONE`], [`RESUME_FOLLOWUP`] or [`RESUME_RESPONSE`].
    pub kind: u32,
    /// The splice's client connection.
    pub flow: rauta_common::maps::FlowKey,
    /// The segment's sequence number, as in the packet.
    pub seq: u32,
    /// Follow-up: the client's acknowledgement (client space), for the between-responses check.
    pub ack: u32,
    /// Follow-up: a `FOLLOWUP_*` outcome, 0 until decided.
    pub outcome: u32,
    /// Response: where the head starts in the payload.
    pub offset: u32,
    /// Response: where the payload starts in the frame.
    pub payload_at: u32,
    /// Response: the payload's length.
    pub payload_len: u32,
}

/// Takes this CPU's resume record if it is of `kind` for the segment `seq` of `flow`: `Some(outcome)`
/// once, then it is cleared.
#[inline(always)]
pub fn resume_take(kind: u32, flow: &rauta_common::maps::FlowKey, seq: u32) -> Option<u32> {
    let scratch = crate::maps::RAUTA_SCRATCH.get_ptr_mut(crate::maps::SCRATCH_XDP)?;
    // SAFETY: this CPU's scratch entry, valid for this run.
    let resume = unsafe { &mut (*scratch).resume };
    if resume.kind != kind || resume.seq != seq || resume.flow != *flow {
        return None;
    }
    resume.kind = RESUME_NONE;
    Some(resume.outcome)
}

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
