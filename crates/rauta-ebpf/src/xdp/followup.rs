//! Follow-up requests on a kept-alive splice (issue 6, item 1): each request is routed by its own head.
//!
//! `splice::client_segment` captures a data segment that starts where the last request ended
//! (`SpliceState::next_request`) into the scratch entry, as `handoff::replay` does for a first segment,
//! and tail-calls `rauta_xdp_followup`, which runs [`decide`]:
//! - the same route decision as for a first segment (`route::decide_stored`); a hit on the splice's own
//!   backend, with a head the splice carries, stays: the entry program runs again and forwards the
//!   segment on the leg (`Resume`, [`FOLLOWUP_SAME`]);
//! - anything else (another endpoint, a miss, a head Tier 1 does not carry) moves the connection, once
//!   every response the backend owes has reached the client (`BackendLeg::between_responses`): the
//!   old leg is dropped (its NAT entry and splice forgotten, the leg recorded in `RAUTA_OLD_LEGS`, so
//!   that the TC program completing the move closes it with a RST) and the segment starts over as a first segment whose
//!   ISNs are `seq − 1` and `ack − 1`, with the options already agreed: stored, the SYN replayed, routed
//!   again — a fresh splice to the new backend, or the hand-off to Tier 3;
//! - a request routed elsewhere while a response is still under way (pipelined) is dropped
//!   unacknowledged: the client sends it again after its retransmission timeout, by when the response
//!   has ended. Never forwarded to a backend its route does not name.

use aya_ebpf::programs::XdpContext;
use rauta_common::{maps::FlowKey, reason::Reason, splice::OldLeg};

use super::{
    FOLLOWUP_EARLY, FOLLOWUP_SAME, FOLLOWUP_SAME_HEAD, FOLLOWUP_SWITCH, FOLLOWUP_SWITCH_UNFRAMED,
    RESUME_FOLLOWUP, Resume, Verdict, handoff, route,
};
use crate::{
    maps::{RAUTA_OLD_LEGS, RAUTA_SCRATCH, RAUTA_SPLICES, SCRATCH_XDP, copy_of, forget_splice},
    parse::{ETH_LEN, IPV4_LEN, TcpHdr, ptr_at},
};

/// Captures the follow-up request segment of `flow` for the decision and records what the entry
/// program needs to resume. `Err`: the segment cannot be captured (dropped with that reason; the
/// client retransmits).
#[inline(always)]
pub fn capture(
    ctx: &XdpContext,
    flow: &FlowKey,
    tcp: &TcpHdr,
    tcp_len: u32,
    payload_len: u32,
    client_ack: u32,
) -> Result<(), Reason> {
    if payload_len > rauta_common::maps::PENDING_PAYLOAD_MAX {
        return Err(Reason::HandoffOversizeDrop);
    }
    let scratch = RAUTA_SCRATCH
        .get_ptr_mut(SCRATCH_XDP)
        .ok_or(Reason::InternalErrorPass)?;
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    handoff::capture_unsummed(ctx, &mut scratch.segment, tcp, tcp_len, payload_len)?;
    scratch.route.flow = *flow;
    scratch.route.len = payload_len;
    scratch.resume = Resume {
        kind: RESUME_FOLLOWUP,
        flow: *flow,
        seq: u32::from_be_bytes(tcp.seq),
        ack: client_ack,
        outcome: 0,
        offset: 0,
        payload_at: 0,
        payload_len,
    };
    Ok(())
}

/// What the follow-up program does with the captured request: `Ok(true)` — resume in the entry
/// program (same backend); `Ok(false)` — the connection moved, the packet is the replayed SYN (the
/// caller tail-calls the route program); `Err(verdict)` — the packet's verdict.
#[inline(always)]
pub fn decide(ctx: &XdpContext) -> Result<bool, Verdict> {
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) else {
        return Err(Verdict::drop(Reason::InternalErrorPass));
    };
    // SAFETY: this CPU's scratch entry, valid for this run (a tail call keeps the CPU).
    let scratch = unsafe { &mut *scratch };
    let r = scratch.resume;
    let Some(s) = copy_of(&RAUTA_SPLICES, &r.flow) else {
        return Err(Verdict::drop(Reason::InternalErrorPass));
    };
    let hit = route::decide_stored(false);
    let same = hit
        && scratch.hit.unsupported_headers == 0
        && scratch.hit.endpoint.addr_be == s.backend_addr
        && scratch.hit.endpoint.port_be == s.backend_port
        && scratch.hit.len <= s.mss;
    let outcome = if same {
        FOLLOWUP_SAME
    } else {
        // The framing is the backend leg's (looked up only for a move: staying needs none of it).
        let Some(leg) = crate::maps::leg_of(&s) else {
            return Err(Verdict::drop(Reason::InternalErrorPass));
        };
        // SAFETY: a slot pointer from a successful lookup; copied at once.
        let leg = unsafe { *leg };
        match leg.between_responses(r.ack, s.requests) {
            Some(true) => FOLLOWUP_SWITCH,
            Some(false) => FOLLOWUP_SWITCH_UNFRAMED,
            None => FOLLOWUP_EARLY,
        }
    };
    if outcome == FOLLOWUP_SAME {
        // HEAD or not: the response's framing depends on it.
        scratch.resume.outcome = if scratch.segment.data[0] == b'H' {
            FOLLOWUP_SAME_HEAD
        } else {
            FOLLOWUP_SAME
        };
        return Ok(true);
    }
    scratch.resume.kind = super::RESUME_NONE;
    if outcome == FOLLOWUP_EARLY {
        return Err(Verdict::drop(Reason::SpliceFollowupEarly));
    }
    crate::maps::count(if outcome == FOLLOWUP_SWITCH {
        Reason::SpliceSwitch
    } else {
        Reason::SpliceSwitchUnframed
    });
    let Some(tcp) = ptr_at::<TcpHdr>(ctx, ETH_LEN + IPV4_LEN) else {
        return Err(Verdict::drop(Reason::InternalErrorPass));
    };
    // SAFETY: bounds checked by `ptr_at`; a copy, as the packet is rewritten later.
    let tcp = unsafe { *tcp };
    let tcp_len = u32::from(tcp.doff_res >> 4) * 4;
    // Recorded before the splice is forgotten: the old backend is told the connection ended (a RST at
    // the sequence number it expects) when the move completes, instead of holding it until its idle
    // timeout. Best effort: without the entry the leg ends at that timeout, as before.
    scratch.old_leg = OldLeg::of(&s, r.seq);
    let _ = RAUTA_OLD_LEGS.insert(&r.flow, &scratch.old_leg, 0);
    forget_splice(&r.flow);
    let verdict = handoff::replay_decoded(
        ctx,
        &r.flow,
        &tcp,
        (tcp_len, r.payload_len),
        s.mss as u16,
        Reason::HandoffSynReplayed,
        Some(s.agreed),
    );
    if verdict.reason != Reason::HandoffSynReplayed {
        return Err(verdict);
    }
    if let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) {
        // SAFETY: this CPU's scratch entry, valid for this run.
        unsafe { (*scratch).handoff_reason = Reason::HandoffSynReplayed as u32 };
    }
    Ok(false)
}
