//! Packets the local stack sends from the VIP, at TC egress:
//! - the listener's SYN-ACK to a replayed SYN becomes the client's ACK carrying the stored first segment
//!   and goes back into the stack (`bpf_redirect(ifindex, BPF_F_INGRESS)`); the client never sees it;
//! - the stack's RST to a replayed SYN (nothing listens) is moved into the client's sequence space;
//! - segments of a flow with a non-zero offset get their seq moved into the client's sequence space.
//!
//! Packets here may be CHECKSUM_PARTIAL clones that share data with the retransmit queue: they are changed
//! only through `bpf_skb_store_bytes` (which unclones) and `bpf_l4_csum_replace` (which knows about partial
//! checksums). The hand-off ACK is written whole, with complete checksums.

use aya_ebpf::{
    bindings::BPF_F_INGRESS,
    helpers::generated::{
        bpf_clone_redirect, bpf_redirect, bpf_skb_change_tail, bpf_skb_store_bytes,
    },
    programs::TcContext,
};
use rauta_common::{
    checksum::fold,
    handoff::{HANDOFF_ACK_V4_HEADERS, build_handoff_ack_v4, seq_offset},
    maps::{
        FIN_CLIENT, FIN_LISTENER, FLOW_ACK_SENT, FLOW_REPLAYED, FLOW_SPLICED, FlowKey, FlowState,
        HELD_MAX, HeldKey, PENDING_BUF, VIP_ENABLED,
    },
    reason::Reason,
    synack::{SynV4, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
    tcpopt::{Translation, ack_options, rescale_window, shift_of, timestamps, translate},
};

use super::{HEADERS, IP_AT, TCP_AT, TcVerdict, field2, field4, tcp_v4_headers};
use crate::maps::{
    RAUTA_FLOWS, RAUTA_HELD, RAUTA_SCRATCH, RAUTA_VIP, SCRATCH_TC, forget_stored, pending_of,
};
use crate::options;

/// Offsets of the TCP sequence number, window and checksum in the frame.
const SEQ_AT: usize = TCP_AT + 4;
const WINDOW_AT: usize = TCP_AT + 14;
const CHECK_AT: usize = TCP_AT + 16;

/// Decides one packet leaving an interface Tier 1 is attached to.
#[inline(always)]
pub fn handle(ctx: &TcContext) -> TcVerdict {
    let Some(h) = tcp_v4_headers(ctx) else {
        return TcVerdict::ok(Reason::TcPass);
    };
    let Some(vip) = RAUTA_VIP.get(0) else {
        return TcVerdict::ok(Reason::TcPass);
    };
    let (saddr, daddr) = (field4(&h, IP_AT + 12), field4(&h, IP_AT + 16));
    let (sport, dport) = (field2(&h, TCP_AT), field2(&h, TCP_AT + 2));
    if vip.enabled != VIP_ENABLED
        || u32::from_ne_bytes(saddr) != vip.addr_be
        || u16::from_ne_bytes(sport) != vip.port_be
    {
        return TcVerdict::ok(Reason::TcPass);
    }
    let key = FlowKey {
        client_addr: u32::from_ne_bytes(daddr),
        vip_addr: u32::from_ne_bytes(saddr),
        client_port: u16::from_ne_bytes(dport),
        vip_port: u16::from_ne_bytes(sport),
    };
    let Some(flow) = RAUTA_FLOWS.get_ptr_mut(key) else {
        return TcVerdict::ok(Reason::TcPass);
    };
    // SAFETY: a pointer from a successful map lookup, valid for this run (RCU).
    let flow = unsafe { &mut *flow };
    let flags = h[TCP_AT + 13];
    let seq = u32::from_be_bytes(field4(&h, SEQ_AT));
    let ack = u32::from_be_bytes(field4(&h, TCP_AT + 8));

    if flow.state == FLOW_REPLAYED {
        if flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN | TCP_ACK
            && ack == flow.client_isn.wrapping_add(1)
        {
            return handoff(ctx, &key, &h, seq);
        }
        if flags & TCP_RST != 0 {
            // Nothing listens on the VIP: the client must learn it as a RST at the sequence number it
            // expects from us (cookie + 1); the stack's RST carries seq 0.
            let verdict = rewrite_seq(ctx, seq, flow.cookie.wrapping_add(1), Reason::TcHandoffRst);
            crate::maps::forget(&key);
            return verdict;
        }
        return TcVerdict::ok(Reason::TcPass);
    }
    if flow.state == FLOW_ACK_SENT && flags & TCP_SYN == 0 {
        // The listener sends on the connection: its socket exists.
        flow.state = FLOW_SPLICED;
    }

    let payload = (ctx.len() as usize).saturating_sub(TCP_AT + (h[TCP_AT + 12] >> 4) as usize * 4);
    if flow.held != 0 && flags & (TCP_SYN | TCP_FIN | TCP_RST) == 0 && payload == 0 {
        // The listener's socket exists and this is its ACK of the first segment: the moment to inject
        // what Tier 1 held. Its next ACK (it is in quick-ack mode) covers everything.
        return inject_held(ctx, &key, flow, &h, seq);
    }

    let offset = flow.offset;
    if flags & TCP_RST != 0 {
        let _ = RAUTA_FLOWS.remove(key);
        let _ = crate::maps::RAUTA_DECISIONS.remove(key);
    } else if flags & TCP_FIN != 0 {
        flow.fins |= FIN_LISTENER;
    } else if flow.fins == FIN_CLIENT | FIN_LISTENER && payload == 0 {
        // The listener's last ACK of the close (no payload).
        let _ = RAUTA_FLOWS.remove(key);
        let _ = crate::maps::RAUTA_DECISIONS.remove(key);
    }
    let options_moved = translate_options(ctx, flow, &h, vip.wscale);
    if !options_moved {
        return TcVerdict::shot(Reason::TcInternalError);
    }
    if offset == 0 {
        return TcVerdict::ok(Reason::TcPass);
    }
    rewrite_seq(ctx, seq, seq.wrapping_sub(offset), Reason::TcTranslated)
}

/// Moves the listener's timestamp value into the client's view of Tier 1's clock, and its window into
/// the window scale Tier 1 announced (when the listener chose another). False if the packet could not
/// be rewritten (it must not leave half translated).
#[inline(always)]
fn translate_options(ctx: &TcContext, flow: &FlowState, h: &[u8; HEADERS], vip_wscale: u8) -> bool {
    if flow.agreed.scaled() && flow.peer_wscale != u32::from(vip_wscale) {
        let old = u16::from_be_bytes(field2(h, WINDOW_AT));
        let new = rescale_window(old, shift_of(flow.peer_wscale as u8), vip_wscale);
        let (old_ne, new_ne) = (old.to_be_bytes(), new.to_be_bytes());
        if ctx.store(WINDOW_AT, &new_ne, 0).is_err()
            || ctx
                .l4_csum_replace(
                    CHECK_AT,
                    u64::from(u16::from_ne_bytes(old_ne)),
                    u64::from(u16::from_ne_bytes(new_ne)),
                    2,
                )
                .is_err()
        {
            return false;
        }
    }
    if flow.agreed.ts == 0 || flow.ts_delta == 0 {
        return true;
    }
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_TC) else {
        return false;
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    let tcp_len = u32::from(h[TCP_AT + 12] >> 4) * 4;
    let len = options::load_skb(ctx, tcp_len, &mut scratch.opts);
    options::walk(&scratch.opts, len, &mut scratch.walk);
    if !scratch.walk.has_ts() {
        return true;
    }
    let opts = &mut scratch.opts;
    let delta = translate(
        opts,
        &scratch.walk,
        &Translation {
            tsval: 0u32.wrapping_sub(flow.ts_delta),
            tsecr: 0,
            sack: 0,
        },
    );
    // The kernel sums 16-bit words as loaded by this little-endian machine: the swapped sum.
    let diff = u64::from(fold(delta).swap_bytes());
    options::store_skb(ctx, len, opts) && ctx.l4_csum_replace(CHECK_AT, 0, diff, 0).is_ok()
}

/// Turns the listener's SYN-ACK (seq = its ISN) into the client's ACK carrying the stored segment, and
/// redirects it to the ingress of the interface it was leaving.
#[inline(always)]
fn handoff(ctx: &TcContext, key: &FlowKey, h: &[u8; HEADERS], listener_isn: u32) -> TcVerdict {
    let Some(flow) = RAUTA_FLOWS.get_ptr_mut(key) else {
        return TcVerdict::shot(Reason::TcInternalError);
    };
    // SAFETY: a pointer from a successful map lookup, valid for this run.
    let flow = unsafe { &mut *flow };
    let Some(pending) = pending_of(key, flow.client_isn.wrapping_add(1)) else {
        return TcVerdict::shot(Reason::TcInternalError);
    };
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_TC) else {
        return TcVerdict::shot(Reason::TcInternalError);
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };

    let client = SynV4 {
        // The SYN-ACK goes to the client: its Ethernet destination is the client's side.
        client_mac: [h[0], h[1], h[2], h[3], h[4], h[5]],
        server_mac: [h[6], h[7], h[8], h[9], h[10], h[11]],
        client_ip: field4(h, IP_AT + 16),
        server_ip: field4(h, IP_AT + 12),
        client_port: field2(h, TCP_AT + 2),
        server_port: field2(h, TCP_AT),
        client_seq: flow.client_isn,
    };
    let len = pending.len;
    // The listener's options: its window scale (rescaled on the way out if it differs from the one
    // Tier 1 announced) and its timestamp (its offset to ours is translated from now on; the ACK echoes
    // it, which is how the listener's cookie check recovers what it agreed to).
    let tcp_len = u32::from(h[TCP_AT + 12] >> 4) * 4;
    let opts_len = options::load_skb(ctx, tcp_len, &mut scratch.opts);
    options::walk(&scratch.opts, opts_len, &mut scratch.walk);
    flow.peer_wscale = scratch.walk.wscale;
    let echo = match timestamps(&scratch.opts, &scratch.walk) {
        Some((listener_ts, _)) if flow.agreed.ts != 0 => {
            flow.ts_delta = listener_ts.wrapping_sub(flow.ts_ours);
            Some((pending.tsval, listener_ts))
        }
        _ => None,
    };
    build_handoff_ack_v4(
        &client,
        listener_isn.wrapping_add(1),
        pending.window as u16,
        pending.flags as u8,
        len as u16,
        pending.sum as u16,
        &ack_options(echo),
        &mut scratch.ack,
    );
    // A connection that moved here from a spliced backend: that leg ends now.
    super::old_leg::close(ctx, key, flow.client_isn, &mut scratch.rst);
    let skb = ctx.skb.skb;
    // SAFETY: helper calls on this program's skb with buffers of the stated sizes (`ack` holds
    // HANDOFF_ACK_V4_HEADERS bytes, `data` at least `len`: `pending_of`); no packet pointer is held
    // across them.
    let written = unsafe {
        bpf_skb_change_tail(skb, HANDOFF_ACK_V4_HEADERS as u32 + len, 0) == 0
            && bpf_skb_store_bytes(
                skb,
                0,
                scratch.ack.as_ptr().cast(),
                HANDOFF_ACK_V4_HEADERS as u32,
                0,
            ) == 0
            && bpf_skb_store_bytes(
                skb,
                HANDOFF_ACK_V4_HEADERS as u32,
                pending.data.cast(),
                len,
                0,
            ) == 0
    };
    if !written {
        // The SYN-ACK may be half rewritten: never let it out. The client retransmits its segment, which
        // replays the SYN again.
        return TcVerdict::shot(Reason::TcInternalError);
    }
    let offset = seq_offset(listener_isn, flow.cookie);
    flow.offset = offset;
    flow.state = FLOW_ACK_SENT;
    if pending.flags & u32::from(TCP_FIN) != 0 {
        flow.fins |= FIN_CLIENT;
    }
    forget_stored(key, &pending);
    // SAFETY: reading the ifindex field of this program's context.
    let ifindex = unsafe { (*skb).ifindex };
    // SAFETY: plain helper call; its return value is the TC action (TC_ACT_REDIRECT).
    let action = unsafe { bpf_redirect(ifindex, u64::from(BPF_F_INGRESS)) } as i32;
    TcVerdict {
        action,
        reason: if offset == 0 {
            Reason::TcHandoffAck
        } else {
            Reason::TcHandoffAckOffset
        },
    }
}

/// Turns the listener's pure ACK (seq `listener_seq`, in the listener's space) into the held client
/// segments: each is written over the packet and sent to ingress, all but the last with
/// `bpf_clone_redirect`, the last with `bpf_redirect`. The listener's ACK itself is consumed; the
/// listener acknowledges again when the segments arrive.
#[inline(always)]
fn inject_held(
    ctx: &TcContext,
    key: &FlowKey,
    flow: &mut FlowState,
    h: &[u8; HEADERS],
    listener_seq: u32,
) -> TcVerdict {
    let held = flow.held;
    // At most once, whatever happens below.
    flow.held = 0;
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_TC) else {
        return TcVerdict::ok(Reason::TcInternalError);
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    let skb = ctx.skb.skb;
    // SAFETY: reading the ifindex field of this program's context.
    let ifindex = unsafe { (*skb).ifindex };
    let mut i = 0;
    while i < HELD_MAX {
        if i >= held {
            break;
        }
        let held_key = HeldKey {
            flow: *key,
            index: i,
        };
        let Some(segment) = RAUTA_HELD.get_ptr(held_key) else {
            // Evicted: the client retransmits it. Before the first rewrite the ACK can still go out;
            // after, the packet is a copy of a segment already injected.
            return if i == 0 {
                TcVerdict::ok(Reason::TcInternalError)
            } else {
                TcVerdict::shot(Reason::TcInternalError)
            };
        };
        // SAFETY: a pointer from a successful map lookup, valid for this run.
        let segment = unsafe { &*segment };
        let client = SynV4 {
            client_mac: [h[0], h[1], h[2], h[3], h[4], h[5]],
            server_mac: [h[6], h[7], h[8], h[9], h[10], h[11]],
            client_ip: field4(h, IP_AT + 16),
            server_ip: field4(h, IP_AT + 12),
            client_port: field2(h, TCP_AT + 2),
            server_port: field2(h, TCP_AT),
            // The builder writes client_seq + 1.
            client_seq: segment.seq.wrapping_sub(1),
        };
        let len =
            ((core::hint::black_box(segment.len).wrapping_sub(1)) & (PENDING_BUF as u32 - 1)) + 1;
        let echo = if flow.agreed.ts != 0 {
            Some((segment.tsval, flow.ts_ours.wrapping_add(flow.ts_delta)))
        } else {
            None
        };
        build_handoff_ack_v4(
            &client,
            listener_seq,
            segment.window as u16,
            segment.flags as u8,
            len as u16,
            segment.sum as u16,
            &ack_options(echo),
            &mut scratch.ack,
        );
        // SAFETY: as in `handoff`.
        let written = unsafe {
            bpf_skb_change_tail(skb, HANDOFF_ACK_V4_HEADERS as u32 + len, 0) == 0
                && bpf_skb_store_bytes(
                    skb,
                    0,
                    scratch.ack.as_ptr().cast(),
                    HANDOFF_ACK_V4_HEADERS as u32,
                    0,
                ) == 0
                && bpf_skb_store_bytes(
                    skb,
                    HANDOFF_ACK_V4_HEADERS as u32,
                    segment.data.as_ptr().cast(),
                    len,
                    0,
                ) == 0
        };
        let _ = RAUTA_HELD.remove(held_key);
        if !written {
            return TcVerdict::shot(Reason::TcInternalError);
        }
        if i + 1 == held {
            // SAFETY: plain helper call; its return value is the TC action (TC_ACT_REDIRECT).
            let action = unsafe { bpf_redirect(ifindex, u64::from(BPF_F_INGRESS)) } as i32;
            return TcVerdict {
                action,
                reason: Reason::TcHeldInjected,
            };
        }
        // SAFETY: plain helper call on this program's skb.
        if unsafe { bpf_clone_redirect(skb, ifindex, u64::from(BPF_F_INGRESS)) } != 0 {
            return TcVerdict::shot(Reason::TcInternalError);
        }
        i += 1;
    }
    TcVerdict::shot(Reason::TcInternalError)
}

/// Writes `new` over the TCP sequence number `old` and updates the checksum (partial or complete).
#[inline(always)]
fn rewrite_seq(ctx: &TcContext, old: u32, new: u32, reason: Reason) -> TcVerdict {
    let (old_be, new_be) = (old.to_be_bytes(), new.to_be_bytes());
    if ctx.store(SEQ_AT, &new_be, 0).is_err()
        || ctx
            .l4_csum_replace(
                CHECK_AT,
                u64::from(u32::from_ne_bytes(old_be)),
                u64::from(u32::from_ne_bytes(new_be)),
                4,
            )
            .is_err()
    {
        // A segment with a seq the client does not expect would be worse than none.
        return TcVerdict::shot(Reason::TcInternalError);
    }
    TcVerdict::ok(reason)
}
