//! Dispatch: which packets are Tier 1's, and which half of the handshake they belong to.
//!
//! Fail-open rule: anything we cannot prove is addressed to the VIP passes untouched (it may be somebody
//! else's traffic). Packets to the VIP that the stack would discard anyway (truncated, impossible
//! lengths) are dropped here, which is cheaper and changes nothing for anyone.

use aya_ebpf::programs::XdpContext;
use rauta_common::{
    checksum::IPPROTO_TCP,
    maps::VIP_ENABLED,
    reason::Reason,
    synack::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

use super::{Verdict, ack, splice};
use crate::{
    maps::{RAUTA_SPLICE_CONFIG, RAUTA_VIP},
    options,
    parse::{
        ETH_LEN, ETH_P_IP, ETH_P_IPV6, EthHdr, IPV4_LEN, Ipv4Hdr, TCP_LEN, TcpHdr, frame_len,
        ptr_at,
    },
};

/// IPv4 "more fragments" flag and fragment offset mask, in the high byte-first `frag_off` field.
const IP_MF_OFFSET_MASK: u16 = 0x3fff;

/// Classifies one packet and acts on it.
#[inline(always)]
pub fn handle(ctx: &XdpContext) -> Verdict {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Verdict::pass(Reason::TruncatedPass);
    };
    // SAFETY: `ptr_at` checked that the whole header is inside the packet.
    let ethertype = unsafe { (*eth).ethertype };
    if ethertype == ETH_P_IPV6 {
        return Verdict::pass(Reason::Ipv6Pass);
    }
    if ethertype != ETH_P_IP {
        return Verdict::pass(Reason::NotIpPass);
    }

    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN) else {
        return Verdict::pass(Reason::TruncatedPass);
    };
    // SAFETY: bounds checked by `ptr_at`; the struct has alignment 1.
    let ip = unsafe { *ip };
    let ihl = ip.version_ihl & 0x0f;
    if ip.version_ihl >> 4 != 4 || ihl < 5 {
        return Verdict::pass(Reason::TruncatedPass);
    }
    if ip.protocol != IPPROTO_TCP {
        return Verdict::pass(Reason::NotTcpPass);
    }

    let Some(vip) = RAUTA_VIP.get(0) else {
        return Verdict::pass(Reason::VipDisabledPass);
    };
    if vip.enabled != VIP_ENABLED {
        return Verdict::pass(Reason::VipDisabledPass);
    }
    if ip.daddr != vip.addr_be.to_ne_bytes() {
        return backend_reply(ctx, &ip);
    }
    // Fragments before options and ports: a non-first fragment has no TCP header at all.
    if u16::from_be_bytes(ip.frag_off) & IP_MF_OFFSET_MASK != 0 {
        return Verdict::pass(Reason::FragmentPass);
    }
    if ihl != 5 {
        return Verdict::pass(Reason::IpOptionsPass);
    }

    let tot_len = u16::from_be_bytes(ip.tot_len) as usize;
    if tot_len < IPV4_LEN + TCP_LEN || ETH_LEN + tot_len > frame_len(ctx) {
        return Verdict::drop(Reason::MalformedDrop);
    }
    let Some(tcp) = ptr_at::<TcpHdr>(ctx, ETH_LEN + IPV4_LEN) else {
        return Verdict::drop(Reason::MalformedDrop);
    };
    // SAFETY: bounds checked by `ptr_at`.
    let tcp = unsafe { *tcp };
    if tcp.dest != vip.port_be.to_ne_bytes() {
        // The VIP may also be the node's address on the backend side.
        return backend_reply(ctx, &ip);
    }
    let tcp_len = ((tcp.doff_res >> 4) as usize) * 4;
    if tcp_len < TCP_LEN || tcp_len > tot_len - IPV4_LEN {
        return Verdict::drop(Reason::MalformedDrop);
    }

    let flags = tcp.flags;
    if flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
        if flags & (TCP_FIN | TCP_RST) != 0 {
            return Verdict::drop(Reason::MalformedDrop);
        }
        if tot_len != IPV4_LEN + tcp_len {
            return Verdict::pass(Reason::SynWithDataPass);
        }
        // Answered by `rauta_xdp_syn` (a tail call): building the SYN-ACK needs a stack of its own. It
        // reads the SYN's options itself (a Linux SYN's in place), so they are not walked here.
        return Verdict {
            action: super::TAIL_CALL_SYN,
            reason: Reason::SynCookieSent,
        };
    }
    // One walk of the options for whatever needs them below (hand-off, translation).
    options::prepare_xdp(ctx, tcp_len as u32);
    let payload_len = (tot_len - IPV4_LEN - tcp_len) as u32;
    ack::check(ctx, &ip, &tcp, tcp_len as u32, payload_len)
}

/// A TCP packet not addressed to the VIP: a backend's packet to a NAT port of a splice, or someone else's.
#[inline(always)]
fn backend_reply(ctx: &XdpContext, ip: &Ipv4Hdr) -> Verdict {
    let Some(config) = RAUTA_SPLICE_CONFIG.get(0) else {
        return Verdict::pass(Reason::NotVipPass);
    };
    let Some(tcp) = ptr_at::<TcpHdr>(ctx, ETH_LEN + IPV4_LEN) else {
        return Verdict::pass(Reason::NotVipPass);
    };
    // SAFETY: bounds checked by `ptr_at`.
    let tcp = unsafe { *tcp };
    if !config.owns_port(u16::from_be_bytes(tcp.dest)) {
        return Verdict::pass(Reason::NotVipPass);
    }
    // Only whole, option-free, unfragmented segments are ours to translate.
    let ihl = ip.version_ihl & 0x0f;
    let tot_len = u16::from_be_bytes(ip.tot_len) as usize;
    let tcp_len = ((tcp.doff_res >> 4) as usize) * 4;
    if ihl != 5
        || u16::from_be_bytes(ip.frag_off) & IP_MF_OFFSET_MASK != 0
        || tcp_len < TCP_LEN
        || tot_len < IPV4_LEN + tcp_len
        || ETH_LEN + tot_len > frame_len(ctx)
    {
        return Verdict::pass(Reason::NotVipPass);
    }
    let payload_len = (tot_len - IPV4_LEN - tcp_len) as u32;
    options::prepare_xdp(ctx, tcp_len as u32);
    splice::backend_segment(ctx, ip, &tcp, tcp_len as u32, payload_len)
        .unwrap_or(Verdict::pass(Reason::NotVipPass))
}
