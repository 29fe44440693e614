//! Every non-SYN segment to the VIP: a segment of a connection the local stack owns passes; an ACK with
//! no connection must carry a valid cookie (it completes a handshake we answered) or it is dropped.
//!
//! This increment has no flow table yet: the local stack's socket table stands in for it
//! (`bpf_skc_lookup_tcp`), which is also what lets connections completed by a valid cookie keep working
//! once the stack (with `tcp_syncookies=2`) has made a socket of them.

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, BPF_TCP_LISTEN, bpf_sock_tuple, iphdr, tcphdr},
    helpers::generated::{bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_raw_check_syncookie_ipv4},
    programs::XdpContext,
};
use rauta_common::{
    reason::Reason,
    synack::{TCP_ACK, TCP_RST, TCP_SYN},
};

use super::Verdict;
use crate::parse::{ETH_LEN, IPV4_LEN, Ipv4Hdr, TcpHdr, ptr_at};

/// Size of the IPv4 member of `struct bpf_sock_tuple`.
const TUPLE_V4_LEN: u32 = 12;

/// Decides a non-SYN segment to the VIP.
#[inline(always)]
pub fn check(ctx: &XdpContext, ip: &Ipv4Hdr, tcp: &TcpHdr) -> Verdict {
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
    if !sk.is_null() {
        // SAFETY: `sk` is a live socket reference until released.
        let state = unsafe { (*sk).state };
        // SAFETY: releasing the reference the lookup took.
        unsafe { bpf_sk_release(sk.cast()) };
        if state != BPF_TCP_LISTEN {
            return Verdict::pass(Reason::SocketPass);
        }
    }

    if tcp.flags & (TCP_SYN | TCP_RST | TCP_ACK) != TCP_ACK {
        return Verdict::pass(Reason::OtherFlagsPass);
    }
    let (Some(iph), Some(th)) = (
        ptr_at::<Ipv4Hdr>(ctx, ETH_LEN),
        ptr_at::<TcpHdr>(ctx, ETH_LEN + IPV4_LEN),
    ) else {
        return Verdict::drop(Reason::MalformedDrop);
    };
    // SAFETY: both pointers cover whole headers inside the packet (checked by `ptr_at`).
    let valid =
        unsafe { bpf_tcp_raw_check_syncookie_ipv4(iph.cast::<iphdr>(), th.cast::<tcphdr>()) } == 0;
    if valid {
        Verdict::pass(Reason::AckCookieOk)
    } else {
        // No RST in this increment: the client times out or retransmits, as with a lost SYN-ACK.
        Verdict::drop(Reason::AckCookieBad)
    }
}
