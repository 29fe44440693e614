//! The TC (clsact ingress) program: the part of the splice XDP cannot do. A frame cannot grow by more than
//! a few bytes in XDP on veth, so the backend's SYN-ACK (54 bytes), which must become our ACK carrying
//! the whole stored request, is passed by XDP and rebuilt here with
//! `bpf_skb_change_tail`, then sent out of the backend's interface (`bpf_redirect`, egress). The client's
//! retransmission of its first segment while that ACK may have been lost takes the same way.
//!
//! Everything else passes untouched.

use aya_ebpf::{
    bindings::TC_ACT_OK,
    helpers::generated::{bpf_redirect, bpf_skb_change_tail, bpf_skb_store_bytes},
    programs::TcContext,
};
use rauta_common::{
    handoff::{HANDOFF_ACK_V4_HEADERS, build_handoff_ack_v4},
    maps::{FlowKey, VIP_ENABLED},
    reason::Reason,
    splice::{NatKey, SPLICE_ACK_SENT, SpliceState},
    synack::{SynV4, TCP_ACK, TCP_RST, TCP_SYN},
    tcpopt::{ack_options, timestamps},
};

use super::{HEADERS, IP_AT, TCP_AT, TcVerdict, field2, field4, tcp_v4_headers};
use crate::maps::{
    RAUTA_SCRATCH, RAUTA_SPLICE_CONFIG, RAUTA_SPLICES, RAUTA_VIP, SCRATCH_TC_INGRESS, copy_of,
};
use crate::options;

/// TCP PSH.
const TCP_PSH: u8 = 0x08;

/// Decides one packet arriving on an interface Tier 1 is attached to.
#[inline(always)]
pub fn handle(ctx: &TcContext) -> TcVerdict {
    let Some(h) = tcp_v4_headers(ctx) else {
        return TcVerdict::ok(Reason::TcPass);
    };
    let Some(config) = RAUTA_SPLICE_CONFIG.get(0) else {
        return TcVerdict::ok(Reason::TcPass);
    };
    let (saddr, daddr) = (field4(&h, IP_AT + 12), field4(&h, IP_AT + 16));
    let (sport, dport) = (field2(&h, TCP_AT), field2(&h, TCP_AT + 2));
    let flags = h[TCP_AT + 13];
    let seq = u32::from_be_bytes(field4(&h, TCP_AT + 4));

    if config.owns_port(u16::from_be_bytes(dport)) {
        // The backend's SYN-ACK, which XDP recorded and passed.
        if flags & (TCP_SYN | TCP_ACK | TCP_RST) != TCP_SYN | TCP_ACK {
            return TcVerdict::ok(Reason::TcPass);
        }
        let nat = NatKey {
            backend_addr: u32::from_ne_bytes(saddr),
            node_addr: u32::from_ne_bytes(daddr),
            backend_port: u16::from_ne_bytes(sport),
            nat_port: u16::from_ne_bytes(dport),
        };
        // SAFETY: a slot pointer from a successful lookup; the key is copied at once.
        let Some(key) = crate::maps::leg_for(&nat).map(|leg| unsafe { (*leg).flow }) else {
            return TcVerdict::ok(Reason::TcPass);
        };
        let Some(splice) = RAUTA_SPLICES.get_ptr_mut(&key) else {
            return TcVerdict::ok(Reason::TcPass);
        };
        // SAFETY: a pointer from a successful map lookup, valid for this run (RCU).
        let splice = unsafe { &mut *splice };
        if splice.state != SPLICE_ACK_SENT || seq != splice.backend_isn {
            return TcVerdict::ok(Reason::TcPass);
        }
        record_backend_options(ctx, &h, splice);
        let s = *splice;
        // A connection that moved here from another backend: that leg ends now.
        if let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_TC_INGRESS) {
            // SAFETY: this CPU's scratch entry, valid for this run; no other reference to it is live.
            super::old_leg::close(ctx, &key, s.client_isn, unsafe { &mut (*scratch).rst });
        }
        return send_request(ctx, &key, &s);
    }

    // The client's first segment again, passed by XDP (`splice_request_resend`).
    let Some(vip) = RAUTA_VIP.get(0) else {
        return TcVerdict::ok(Reason::TcPass);
    };
    if vip.enabled != VIP_ENABLED
        || u32::from_ne_bytes(daddr) != vip.addr_be
        || u16::from_ne_bytes(dport) != vip.port_be
    {
        return TcVerdict::ok(Reason::TcPass);
    }
    let key = FlowKey {
        client_addr: u32::from_ne_bytes(saddr),
        vip_addr: u32::from_ne_bytes(daddr),
        client_port: u16::from_ne_bytes(sport),
        vip_port: u16::from_ne_bytes(dport),
    };
    let Some(s) = copy_of(&RAUTA_SPLICES, &key) else {
        return TcVerdict::ok(Reason::TcPass);
    };
    if s.state != SPLICE_ACK_SENT || seq != s.first_seq() {
        return TcVerdict::ok(Reason::TcPass);
    }
    send_request(ctx, &key, &s)
}

/// Records what the backend's SYN-ACK agreed to: its window scale (its windows are rescaled to Tier 1's
/// when they differ) and its timestamp (the offset to Tier 1's, translated from now on).
#[inline(always)]
fn record_backend_options(ctx: &TcContext, h: &[u8; HEADERS], s: &mut SpliceState) {
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_TC_INGRESS) else {
        return;
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    let tcp_len = u32::from(h[TCP_AT + 12] >> 4) * 4;
    let len = options::load_skb(ctx, tcp_len, &mut scratch.opts);
    options::walk(&scratch.opts, len, &mut scratch.walk);
    s.backend_wscale = scratch.walk.wscale as u8;
    if let Some((backend_ts, _)) = timestamps(&scratch.opts, &scratch.walk) {
        s.ts_offset = backend_ts.wrapping_sub(s.ts_ours);
    }
}

/// Rebuilds the packet into our ACK to the backend carrying the stored request, and sends it out of the
/// backend's interface.
#[inline(always)]
fn send_request(ctx: &TcContext, key: &FlowKey, s: &SpliceState) -> TcVerdict {
    let Some(pending) = crate::maps::request_of(key, s) else {
        return TcVerdict::shot(Reason::TcSpliceError);
    };
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_TC_INGRESS) else {
        return TcVerdict::shot(Reason::TcSpliceError);
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    let leg = SynV4 {
        client_mac: s.node_mac,
        server_mac: s.backend_mac,
        client_ip: s.node_addr.to_ne_bytes(),
        server_ip: s.backend_addr.to_ne_bytes(),
        client_port: s.nat_port.to_ne_bytes(),
        server_port: s.backend_port.to_ne_bytes(),
        // The builder writes client_seq + 1.
        client_seq: s.leg_isn,
    };
    // The request, 1..=its buffer's size bytes read from the start of `data` (`request_of` restated
    // the bound for the verifier).
    let whole = pending.len;
    let len = whole;
    build_handoff_ack_v4(
        &leg,
        s.backend_isn.wrapping_add(1),
        s.window as u16,
        TCP_PSH,
        len as u16,
        pending.sum as u16,
        &ack_options(if s.agreed.ts != 0 {
            Some((s.ts_leg, s.ts_ours.wrapping_add(s.ts_offset)))
        } else {
            None
        }),
        &mut scratch.ack,
    );
    let skb = ctx.skb.skb;
    let tail = HANDOFF_ACK_V4_HEADERS as u32;
    // SAFETY: helper calls on this program's skb with buffers of the stated sizes (`ack` holds
    // HANDOFF_ACK_V4_HEADERS bytes, `data` at least `whole`: `request_of`); no packet pointer is held
    // across them.
    let written = unsafe {
        bpf_skb_change_tail(skb, tail + whole, 0) == 0
            && bpf_skb_store_bytes(
                skb,
                0,
                scratch.ack.as_ptr().cast(),
                HANDOFF_ACK_V4_HEADERS as u32,
                0,
            ) == 0
            && bpf_skb_store_bytes(skb, tail, pending.data.cast(), whole, 0) == 0
    };
    if !written {
        // Half rewritten: never let it out. The backend retransmits its SYN-ACK.
        return TcVerdict::shot(Reason::TcSpliceError);
    }
    // SAFETY: plain helper call; its return value is the TC action (TC_ACT_REDIRECT).
    let action = unsafe { bpf_redirect(s.backend_ifindex, 0) } as i32;
    if action == TC_ACT_OK {
        return TcVerdict::shot(Reason::TcSpliceError);
    }
    TcVerdict {
        action,
        reason: Reason::TcSpliceAck,
    }
}
