//! Client segments of a flow Tier 1 handed (or is handing) to the local listener.
//!
//! Until the listener's socket is known to exist, nothing but the first data segment may reach the stack:
//! the listener would answer any other segment with a RST that kills the client's connection. Once it
//! exists, segments pass; with a non-zero offset their ack is moved into the listener's sequence space.

use aya_ebpf::programs::XdpContext;
use rauta_common::{
    checksum::csum_replace4,
    maps::{FIN_CLIENT, FIN_LISTENER, FLOW_ACK_SENT, FLOW_SPLICED, FlowKey, FlowState},
    reason::Reason,
    synack::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
    tcpopt::{Translation, csum_add_delta},
};

use super::{Verdict, ack, handoff};
use crate::{
    maps::RAUTA_FLOWS,
    options,
    parse::{ETH_LEN, IPV4_LEN, Ipv4Hdr, TcpHdr, ptr_at},
};

/// Decides a client segment of the flow `key`, whose state is at `state` (an entry of `RAUTA_FLOWS`).
#[inline(always)]
pub fn segment(
    ctx: &XdpContext,
    key: &FlowKey,
    state: *mut FlowState,
    ip: &Ipv4Hdr,
    tcp: &TcpHdr,
    tcp_len: u32,
    payload_len: u32,
) -> Verdict {
    // SAFETY: a pointer from a successful map lookup, valid for this run (RCU).
    let flow = unsafe { &mut *state };
    let flags = tcp.flags;

    let seq = u32::from_be_bytes(tcp.seq);
    let ack_seq = u32::from_be_bytes(tcp.ack_seq);
    let first_seq = flow.client_isn.wrapping_add(1);
    // A segment within the hand-off range (the first segment and the held ones) whose ack already is the
    // listener's is one of Tier 1's own packets seen a second time: generic-mode XDP also runs on what TC
    // redirects to ingress. It passes as it is. (A client's own ack equals this only if it has received
    // exactly `offset` bytes by then: with offset 0 that is the same packet anyway.)
    let ours = seq_in(seq, first_seq, flow.next_seq)
        && ack_seq == flow.cookie.wrapping_add(1).wrapping_add(flow.offset);
    // Whether this segment's ack is in the client's sequence space and must be moved to the listener's.
    let translate = flow.offset != 0 && flags & TCP_ACK != 0 && !ours;

    if flow.state != FLOW_SPLICED {
        // The hand-off ACK may still be queued behind this segment: only the stack can tell.
        if flow.state == FLOW_ACK_SENT && ack::stack_owns(ctx, ip, tcp) {
            flow.state = FLOW_SPLICED;
        } else {
            if flags & TCP_RST != 0 {
                // The listener has no state for a replayed SYN (it answered with a cookie): forget it too.
                crate::maps::forget(key);
                return Verdict::drop(Reason::HandoffPendingDrop);
            }
            let first = seq == first_seq
                && flags & (TCP_SYN | TCP_RST | TCP_ACK) == TCP_ACK
                && payload_len > 0;
            if !first {
                if payload_len > 0
                    && seq == flow.next_seq
                    && flags & (TCP_SYN | TCP_RST | TCP_ACK) == TCP_ACK
                {
                    // The next segment of a multi-segment first request: hold it for TC to inject once the
                    // listener's socket exists, instead of costing the client an RTO.
                    return handoff::hold(ctx, key, flow, tcp, tcp_len, payload_len);
                }
                return Verdict::drop(Reason::HandoffPendingDrop);
            }
            if flow.state != FLOW_ACK_SENT {
                if ack_seq != flow.cookie.wrapping_add(1) {
                    return Verdict::drop(Reason::HandoffPendingDrop);
                }
                // The client retransmitted its first segment before the listener answered (the replayed
                // SYN was lost, e.g. a full accept queue). Replay again.
                return handoff::replay(
                    ctx,
                    key,
                    tcp,
                    tcp_len,
                    payload_len,
                    Reason::HandoffRetransmitReplayed,
                );
            }
            // ACK_SENT and the first segment again: either the hand-off ACK itself, seen a second time
            // because generic-mode XDP runs on redirected packets too (its ack is already the
            // listener's), or the client's retransmission (ack in its own space). Both may pass: the
            // replayed SYN made the listener issue this very cookie, so it accepts the ACK itself.
            if !ours && ack_seq != flow.cookie.wrapping_add(1) {
                return Verdict::drop(Reason::HandoffPendingDrop);
            }
        }
    }

    if flow.held != 0
        && payload_len > 0
        && !ours
        && seq != first_seq
        && seq_in(seq, first_seq, flow.next_seq)
    {
        // The client retransmits data Tier 1 still holds: the stack gets it this way; stop injecting.
        // (Injecting anyway would only deliver duplicates, which the listener discards.)
        flow.held = 0;
    }
    let offset = flow.offset;
    if flags & TCP_RST != 0 {
        let _ = RAUTA_FLOWS.remove(key);
        let _ = crate::maps::RAUTA_DECISIONS.remove(key);
    } else if flags & TCP_FIN != 0 {
        flow.fins |= FIN_CLIENT;
    } else if flow.fins == FIN_CLIENT | FIN_LISTENER && payload_len == 0 {
        // The last ACK of the close: nothing of this flow needs translating after it (a retransmitted FIN
        // finds no entry; with offset 0 that changes nothing, otherwise the LRU would have to anyway).
        let _ = RAUTA_FLOWS.remove(key);
        let _ = crate::maps::RAUTA_DECISIONS.remove(key);
    }
    // The client's timestamp echoes are in Tier 1's clock; the listener's is `ts_delta` ahead. Its SACK
    // blocks name the listener's bytes in the client's sequence space.
    let move_options = !ours
        && ((flow.agreed.ts != 0 && flow.ts_delta != 0) || (flow.agreed.sack != 0 && offset != 0));
    if !translate && !move_options {
        return Verdict::pass(Reason::FlowPass);
    }
    let mut delta = 0;
    if move_options {
        let Some(moved) = options::translate_xdp(
            ctx,
            &Translation {
                tsval: 0,
                tsecr: flow.ts_delta,
                sack: offset,
            },
        ) else {
            return Verdict::drop(Reason::InternalErrorPass);
        };
        delta = moved;
    }
    let Some(th) = ptr_at::<TcpHdr>(ctx, ETH_LEN + IPV4_LEN) else {
        return Verdict::drop(Reason::MalformedDrop);
    };
    // SAFETY: `th` covers the whole TCP header (checked by `ptr_at`); alignment 1.
    let th = unsafe { &mut *th };
    let mut check = csum_add_delta(u16::from_be_bytes(th.check), delta);
    if translate {
        let old = u32::from_be_bytes(th.ack_seq);
        let new = old.wrapping_add(offset);
        th.ack_seq = new.to_be_bytes();
        check = csum_replace4(check, old, new);
    }
    th.check = check.to_be_bytes();
    Verdict::pass(Reason::FlowTranslatedPass)
}

/// True if `seq` is in `[start, end)`, modulo 2^32.
#[inline(always)]
fn seq_in(seq: u32, start: u32, end: u32) -> bool {
    seq.wrapping_sub(start) < end.wrapping_sub(start)
}
