//! RAUTA's BPF programs (Tier 1, increment 2): an XDP program that answers SYNs to the VIP with SYN-cookie
//! SYN-ACKs (no state for half-open connections), validates the cookie in the client's ACK and hands the
//! connection to the local (Tier 3) listener by replaying the handshake; and a TC egress program that
//! completes that hand-off and translates handed-off flows. See `docs/kernel-tiers.md`.
//!
//! Layout: `maps` declares every map (one purpose line each), `parse` reads headers with bounds checks,
//! `xdp/` holds the XDP decisions (`classify` for the dispatch, `syn` for the SYN-ACK, `ack` for every
//! other segment, `handoff` for storing and replaying, `flow` for segments of handed-off flows), `tc/`
//! the egress side.
#![no_std]
#![no_main]
// The 64-bit compare-and-swap of the NAT slots (`maps::swap_claim`): see there.
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod maps;
mod options;
mod parse;
mod tc;
mod xdp;
mod zero;

use rauta_common::{
    reason::Reason,
    splice::{
        PROG_ENTRY, PROG_FOLLOWUP, PROG_RESPONSE, PROG_ROUTE, PROG_SPLICE, PROG_SPLICE_START,
        PROG_SYN,
    },
};

use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

/// Tier 1's entry point: classify the packet, act on it, count why.
#[xdp]
pub fn rauta_xdp(ctx: XdpContext) -> u32 {
    let verdict = xdp::classify::handle(&ctx);
    if verdict.action == xdp::TAIL_CALL_SYN {
        // SAFETY: a tail call with this program's own context; it returns only if the slot is empty.
        unsafe { maps::RAUTA_PROGS.tail_call(&ctx, PROG_SYN) };
        maps::count(Reason::InternalErrorPass);
        return xdp_action::XDP_PASS;
    }
    if verdict.action == xdp::TAIL_CALL_FOLLOWUP || verdict.action == xdp::TAIL_CALL_RESPONSE {
        let slot = if verdict.action == xdp::TAIL_CALL_FOLLOWUP {
            PROG_FOLLOWUP
        } else {
            PROG_RESPONSE
        };
        // SAFETY: a tail call with this program's own context; it returns only if the slot is empty.
        unsafe { maps::RAUTA_PROGS.tail_call(&ctx, slot) };
        // Without the step the segment cannot be judged: dropped, the peer retransmits.
        maps::count(Reason::InternalErrorPass);
        return xdp_action::XDP_DROP;
    }
    // A first data segment was captured (the packet is still that segment): the routing decision on it
    // runs in `rauta_xdp_route` (a tail call, with a verifier budget of its own), which starts the
    // splice to a backend, or writes the replayed SYN, counts the hand-off and passes it.
    if xdp::handoff::routed_next(verdict.reason) {
        if let Some(scratch) = maps::RAUTA_SCRATCH.get_ptr_mut(maps::SCRATCH_XDP) {
            // SAFETY: this CPU's scratch entry, valid for this run.
            unsafe { (*scratch).handoff_reason = verdict.reason as u32 };
            // SAFETY: a tail call with this program's own context; it returns only if the slot is
            // empty, and then the hand-off below goes on without a routing decision.
            unsafe { maps::RAUTA_PROGS.tail_call(&ctx, PROG_ROUTE) };
        }
        // No routing decision: the hand-off needs its replayed SYN and its flow entry.
        if !xdp::handoff::write_replayed_syn(&ctx) || !xdp::handoff::commit_flow() {
            maps::count(Reason::InternalErrorPass);
            return xdp_action::XDP_DROP;
        }
    }
    maps::count(verdict.reason);
    verdict.action
}

/// A SYN to the VIP (tail-called by `rauta_xdp`, which checked it and walked its options): the
/// SYN-cookie SYN-ACK.
#[xdp]
pub fn rauta_xdp_syn(ctx: XdpContext) -> u32 {
    let verdict = xdp::syn::answer_packet(&ctx);
    maps::count(verdict.reason);
    verdict.action
}

/// A follow-up request on a kept-alive splice (tail-called by `rauta_xdp` with the segment captured):
/// routed by its own head (`xdp::followup`). Same backend: back to `rauta_xdp`, which forwards it on
/// the leg; moved: the packet is now the replayed SYN and the routing decision runs on it as on a first
/// segment (`rauta_xdp_route`); otherwise dropped.
#[xdp]
pub fn rauta_xdp_followup(ctx: XdpContext) -> u32 {
    let slot = match xdp::followup::decide(&ctx) {
        Ok(true) => PROG_ENTRY,
        Ok(false) => PROG_ROUTE,
        Err(verdict) => {
            maps::count(verdict.reason);
            return verdict.action;
        }
    };
    // SAFETY: a tail call with this program's own context; it returns only if the slot is empty.
    unsafe { maps::RAUTA_PROGS.tail_call(&ctx, slot) };
    maps::count(Reason::InternalErrorPass);
    xdp_action::XDP_DROP
}

/// A backend segment in which a response head starts (tail-called by `rauta_xdp`): its framing goes
/// into the splice state (`xdp::response`), then back to `rauta_xdp`, which translates the segment.
#[xdp]
pub fn rauta_xdp_response(ctx: XdpContext) -> u32 {
    maps::count(xdp::response::record(&ctx));
    // SAFETY: a tail call with this program's own context; it returns only if the slot is empty.
    unsafe { maps::RAUTA_PROGS.tail_call(&ctx, PROG_ENTRY) };
    maps::count(Reason::InternalErrorPass);
    xdp_action::XDP_DROP
}

/// The routing decision on a captured first segment (tail-called by `rauta_xdp`; the packet is still the
/// segment). A hit goes on to the splice (`rauta_xdp_splice`), which overwrites the packet with our SYN
/// to the backend; anything else rewrites it into the replayed SYN and passes that to Tier 3, counted
/// as the hand-off it is.
#[xdp]
pub fn rauta_xdp_route(ctx: XdpContext) -> u32 {
    if xdp::route::decide_stored(true) {
        // SAFETY: a tail call with this program's own context; it returns only if the slot is empty,
        // and then the hand-off goes on as if there had been no hit.
        unsafe { maps::RAUTA_PROGS.tail_call(&ctx, PROG_SPLICE) };
    }
    // Misses are not recorded in the first-request histogram: it measures the splice's hits.
    handoff(&ctx)
}

/// Step 1 of the splice of a routing hit (tail-called by `rauta_xdp_route` with the hit in the scratch
/// entry): requests with a header line the splice cannot carry (found by the parser's one pass) go to
/// Tier 3.
/// Then step 2, `rauta_xdp_splice_start`. If the splice cannot go on, the connection goes on to Tier 3
/// as a miss would.
#[xdp]
pub fn rauta_xdp_splice(ctx: XdpContext) -> u32 {
    let Some(scratch) = maps::RAUTA_SCRATCH.get_ptr_mut(maps::SCRATCH_XDP) else {
        // Never (the per-CPU entry exists); the packet is still the data segment, which no socket owns.
        return xdp_action::XDP_DROP;
    };
    // SAFETY: this CPU's scratch entry, valid for this run (a tail call keeps the CPU).
    if unsafe { (*scratch).hit.unsupported_headers } != 0 {
        return fall_back(&ctx, Some(Reason::SpliceHeaderUnsupported));
    }
    // SAFETY: a tail call with this program's own context; it returns only if the slot is empty.
    unsafe { maps::RAUTA_PROGS.tail_call(&ctx, PROG_SPLICE_START) };
    fall_back(&ctx, Some(Reason::InternalErrorPass))
}

/// Step 2 of the splice: our SYN to the backend (`splice::start`).
#[xdp]
pub fn rauta_xdp_splice_start(ctx: XdpContext) -> u32 {
    let Some(scratch) = maps::RAUTA_SCRATCH.get_ptr_mut(maps::SCRATCH_XDP) else {
        // As in `rauta_xdp_splice`.
        return xdp_action::XDP_DROP;
    };
    // SAFETY: this CPU's scratch entry, valid for this run (a tail call keeps the CPU).
    let hit = unsafe { (*scratch).hit };
    match xdp::splice::start(&ctx, &hit) {
        Ok(spliced) => {
            maps::count(spliced.reason);
            maps::first_request_done();
            spliced.action
        }
        Err(fallback) => fall_back(&ctx, fallback),
    }
}

/// A hit that is not spliced after all: count why, and hand the connection to Tier 3 as a miss (counted
/// as the hand-off it is).
#[inline(always)]
fn fall_back(ctx: &XdpContext, reason: Option<Reason>) -> u32 {
    if let Some(reason) = reason {
        maps::count(reason);
    }
    let action = handoff(ctx);
    maps::first_request_done();
    action
}

/// The hand-off to Tier 3 of a first data segment that is not spliced: the packet becomes the replayed
/// SYN and the flow entry is written (the routing decision came first, see
/// `xdp::handoff::replay_decoded`), and the SYN passes. If either cannot be written the packet is
/// dropped (the client retransmits; the SYN is written first, so no flow entry is left without it).
#[inline(always)]
fn handoff(ctx: &XdpContext) -> u32 {
    if !xdp::handoff::write_replayed_syn(ctx) || !xdp::handoff::commit_flow() {
        maps::count(Reason::InternalErrorPass);
        return xdp_action::XDP_DROP;
    }
    count_handoff();
    xdp_action::XDP_PASS
}

/// Counts the hand-off `rauta_xdp` left in the scratch entry (first time, or a retransmission).
#[inline(always)]
fn count_handoff() {
    let handoff = maps::RAUTA_SCRATCH
        .get_ptr(maps::SCRATCH_XDP)
        // SAFETY: this CPU's scratch entry, read at once.
        .map(|scratch| unsafe { (*scratch).handoff_reason })
        .unwrap_or(Reason::HandoffSynReplayed as u32);
    maps::count(if handoff == Reason::HandoffRetransmitReplayed as u32 {
        Reason::HandoffRetransmitReplayed
    } else {
        Reason::HandoffSynReplayed
    });
}

/// The backend leg's other half, at TC ingress of the same interfaces: turns a backend's SYN-ACK (and a
/// client's retransmitted first segment) into the ACK carrying the stored request, which XDP cannot do
/// where a frame cannot grow.
#[classifier]
pub fn rauta_tc_ingress(ctx: TcContext) -> i32 {
    let verdict = tc::ingress::handle(&ctx);
    maps::count(verdict.reason);
    verdict.action
}

/// The hand-off's other half, at TC (clsact) egress of the same interfaces: turns the listener's SYN-ACK
/// to a replayed SYN into the client's ACK with the stored request, and translates handed-off flows.
#[classifier]
pub fn rauta_tc_egress(ctx: TcContext) -> i32 {
    let verdict = tc::egress::handle(&ctx);
    maps::count(verdict.reason);
    verdict.action
}

/// Passes every packet. veth delivers `XDP_TX` frames only if the peer has an XDP program, so test
/// topologies attach this to the peer device.
#[xdp]
pub fn rauta_xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The SYN-cookie helpers are GPL-only in the kernel; the object must declare a GPL-compatible license.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable path to here, so a program that loads never panics.
    loop {}
}
