//! Every non-SYN segment to the VIP. In order:
//! 1. a segment of a flow Tier 1 handed to the listener goes to `flow` (pass, translate, or hold back);
//! 2. a segment of a connection the local stack owns (not through Tier 1: e.g. older than the program)
//!    passes;
//! 3. otherwise it must be an ACK carrying a valid cookie, or it is dropped. A valid pure ACK is
//!    absorbed (the client's handshake is complete; the stack never needs to see it); a valid ACK with
//!    data is the first data segment and starts the hand-off (`handoff`).

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, BPF_TCP_LISTEN, bpf_sock_tuple, iphdr, tcphdr},
    helpers::generated::{bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_raw_check_syncookie_ipv4},
    programs::XdpContext,
};
use rauta_common::{
    maps::FlowKey,
    reason::Reason,
    synack::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

use super::{Verdict, flow, handoff, splice};
use crate::{
    maps::{RAUTA_FLOWS, RAUTA_SCRATCH, RAUTA_SPLICES, SCRATCH_XDP, client_leg},
    parse::{ETH_LEN, IPV4_LEN, Ipv4Hdr, TcpHdr, ptr_at},
};

/// Size of the IPv4 member of `struct bpf_sock_tuple`.
const TUPLE_V4_LEN: u32 = 12;

/// Decides a non-SYN segment to the VIP whose TCP header is `tcp_len` bytes and which carries
/// `payload_len` bytes of data (both checked against the packet by the caller).
#[inline(always)]
pub fn check(
    ctx: &XdpContext,
    ip: &Ipv4Hdr,
    tcp: &TcpHdr,
    tcp_len: u32,
    payload_len: u32,
) -> Verdict {
    let key = FlowKey {
        client_addr: u32::from_ne_bytes(ip.saddr),
        vip_addr: u32::from_ne_bytes(ip.daddr),
        client_port: u16::from_ne_bytes(tcp.source),
        vip_port: u16::from_ne_bytes(tcp.dest),
    };
    let flags = tcp.flags;
    if payload_len == 0
        && flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK) == TCP_ACK
        && let Some(leg) = client_leg(&key)
    {
        // SAFETY: a slot pointer from a successful lookup (array values live as long as the map).
        return splice::client_ack(ctx, unsafe { &*leg }, tcp, tcp_len);
    }
    if let Some(splice) = RAUTA_SPLICES.get_ptr_mut(key) {
        return splice::client_segment(ctx, &key, splice, tcp, tcp_len, payload_len);
    }
    if let Some(state) = RAUTA_FLOWS.get_ptr_mut(key) {
        return flow::segment(ctx, &key, state, ip, tcp, tcp_len, payload_len);
    }
    if stack_owns(ctx, ip, tcp) {
        return Verdict::pass(Reason::SocketPass);
    }

    if flags & (TCP_SYN | TCP_RST | TCP_ACK) != TCP_ACK {
        return Verdict::pass(Reason::OtherFlagsPass);
    }
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) else {
        return Verdict::pass(Reason::InternalErrorPass);
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let probe = unsafe { &mut (*scratch).tcp };
    // One cookie generation validates the cookie and decodes its MSS (the kernel's check would cost as
    // much again, and decodes nothing).
    let Some(mss) = handoff::check_cookie(ctx, probe, tcp) else {
        // No RST in this increment: the client times out or retransmits, as with a lost SYN-ACK.
        return Verdict::drop(Reason::AckCookieBad);
    };
    if payload_len == 0 {
        return Verdict::drop(Reason::AckCookieOk);
    }
    handoff::replay_decoded(
        ctx,
        &key,
        tcp,
        (tcp_len, payload_len),
        mss,
        Reason::HandoffSynReplayed,
        None,
    )
}

/// True if the cookie in the packet's ACK is valid for its 4-tuple and ISN (right secret, at most two
/// minutes old). The helper reads seq − 1 as the client's ISN and ack − 1 as the cookie. Asked only when
/// `handoff::check_cookie`'s one generation did not match (a cookie of an earlier minute, or a forgery).
#[inline(always)]
pub fn cookie_valid(ctx: &XdpContext) -> bool {
    let (Some(iph), Some(th)) = (
        ptr_at::<Ipv4Hdr>(ctx, ETH_LEN),
        ptr_at::<TcpHdr>(ctx, ETH_LEN + IPV4_LEN),
    ) else {
        return false;
    };
    // SAFETY: both pointers cover whole headers inside the packet (checked by `ptr_at`).
    unsafe { bpf_tcp_raw_check_syncookie_ipv4(iph.cast::<iphdr>(), th.cast::<tcphdr>()) == 0 }
}

/// True if the local stack has a socket for the segment's 4-tuple that is not a listener (established,
/// closing, time-wait, request socket).
#[inline(always)]
pub fn stack_owns(ctx: &XdpContext, ip: &Ipv4Hdr, tcp: &TcpHdr) -> bool {
    // SAFETY: an all-zero tuple is a valid value of this plain C union.
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    // SAFETY: writing the IPv4 member of the union; the helper reads TUPLE_V4_LEN bytes of it.
    unsafe {
        let v4 = &mut tuple.__bindgen_anon_1.ipv4;
        v4.saddr = u32::from_ne_bytes(ip.saddr);
        v4.daddr = u32::from_ne_bytes(ip.daddr);
        v4.sport = u16::from_ne_bytes(tcp.source);
        v4.dport = u16::from_ne_bytes(tcp.dest);
    }
    // SAFETY: helper call with a stack tuple of the declared size; a non-null result is released below on
    // every path (the verifier enforces it).
    let sk = unsafe {
        bpf_skc_lookup_tcp(
            ctx.ctx.cast(),
            &mut tuple,
            TUPLE_V4_LEN,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if sk.is_null() {
        return false;
    }
    // SAFETY: `sk` is a live socket reference until released.
    let state = unsafe { (*sk).state };
    // SAFETY: releasing the reference the lookup took.
    unsafe { bpf_sk_release(sk.cast()) };
    state != BPF_TCP_LISTEN
}
