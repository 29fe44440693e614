//! SYN -> SYN-cookie SYN-ACK, written over the SYN and sent back with `XDP_TX`. No state is kept:
//! everything the connection needs later is in the cookie (the kernel's own encoding, so the local stack
//! can validate it).

use aya_ebpf::{
    bindings::{iphdr, tcphdr},
    helpers::generated::{
        bpf_csum_diff, bpf_ktime_get_coarse_ns, bpf_tcp_raw_gen_syncookie_ipv4,
        bpf_xdp_adjust_tail, bpf_xdp_load_bytes,
    },
    programs::XdpContext,
};
use rauta_common::{
    checksum::{fold, pseudo_header_v4},
    maps::{DEFAULT_WSCALE, SYNACK_V4_LEN},
    reason::Reason,
    synack::{SYNACK_V4_WORDS, SynV4, TCPOPT_MSS, build_synack_v4_words},
    tcpopt::{
        Agreed, TCPOLEN_TIMESTAMP, TCPOPT_NOP, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP, TCPOPT_WSCALE,
        WSCALE_MAX, cookie_tsval, syn_options, timestamps,
    },
};

use super::Verdict;
use crate::{
    maps::{RAUTA_SCRATCH, RAUTA_VIP, SCRATCH_XDP},
    options,
    parse::{ETH_LEN, EthHdr, IPV4_LEN, Ipv4Hdr, TCP_LEN, TcpHdr, frame_len, ptr_at},
};

/// Answers the SYN in the packet (the entry program checked it: IPv4 without options, a TCP SYN without
/// payload and with a sane header length, to the VIP) in the SYN program, a tail call.
#[inline(always)]
pub fn answer_packet(ctx: &XdpContext) -> Verdict {
    let (Some(ip), Some(tcp)) = (
        ptr_at::<Ipv4Hdr>(ctx, ETH_LEN),
        ptr_at::<TcpHdr>(ctx, ETH_LEN + IPV4_LEN),
    ) else {
        return Verdict::drop(Reason::MalformedDrop);
    };
    // SAFETY: bounds checked by `ptr_at`; alignment 1.
    let (ip, tcp) = unsafe { (*ip, *tcp) };
    let tcp_len = u32::from(tcp.doff_res >> 4) * 4;
    answer(ctx, &ip, &tcp, tcp_len)
}

/// Answers a SYN without payload whose IPv4 header has no options and whose TCP header is `tcp_len`
/// bytes (20..=60, checked by the caller).
///
/// The SYN-ACK is written over the SYN where it lies (a Linux SYN already has its 74 bytes; others are
/// resized first), straight into the packet: no frame built in the scratch entry and stored back with a
/// helper.
#[inline(always)]
pub fn answer(ctx: &XdpContext, ip: &Ipv4Hdr, tcp: &TcpHdr, tcp_len: u32) -> Verdict {
    // A corrupted SYN must not cost a SYN-ACK (nor reflect one to a corrupted address). Summed as the
    // ten 16-bit words in the packet: the one's-complement sum of byte-swapped words is the swapped
    // sum, and a correct header sums to 0xffff either way.
    let Some(header) = ptr_at::<[u16; IPV4_LEN / 2]>(ctx, ETH_LEN) else {
        return Verdict::drop(Reason::MalformedDrop);
    };
    // SAFETY: bounds checked by `ptr_at`; 2-byte aligned (packet data starts so; the offset is even).
    if fold(sum_words(unsafe { &*header }, 0)) != 0xffff {
        return Verdict::drop(Reason::BadChecksumDrop);
    }
    // The mask restates the 0..=60 range for the verifier at the call site (LLVM may not keep the caller's
    // checks in a register the verifier can follow); black_box stops LLVM from folding it away.
    let len = core::hint::black_box(tcp_len) & 0x3c;
    if len < TCP_LEN as u32 {
        return Verdict::drop(Reason::MalformedDrop);
    }
    let Some(offer) = checked_offer(ctx, ip, len) else {
        return Verdict::drop(Reason::BadChecksumDrop);
    };

    // The cookie helper reads the ports and the ISN, and parses the header's options for the MSS to
    // encode. The SYN's options were read already (by the kernel's own rules: see `OptionWalk::step`),
    // so the helper gets a copy whose only option is that MSS: one option to parse instead of the
    // SYN's five. An MSS of 0 (none offered) parses as none there too: TCP's 536.
    // Built as six words (a byte array would be zeroed with a call of the object's byte-wise `memset`).
    let mss_offered = offer.mss.to_be_bytes();
    let mut probe: [u32; COOKIE_PROBE_LEN / 4] = [
        u32::from_ne_bytes([tcp.source[0], tcp.source[1], tcp.dest[0], tcp.dest[1]]),
        u32::from_ne_bytes(tcp.seq),
        0,
        u32::from_ne_bytes([((COOKIE_PROBE_LEN / 4) as u8) << 4, tcp.flags, 0, 0]),
        0,
        u32::from_ne_bytes([TCPOPT_MSS, 4, mss_offered[0], mss_offered[1]]),
    ];
    let Some(iph) = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN) else {
        return Verdict::drop(Reason::MalformedDrop);
    };
    // SAFETY: `iph` covers a whole IPv4 header in the packet; `probe` is a TCP header of
    // COOKIE_PROBE_LEN bytes whose data offset says so (the helper checks both).
    let cookie = unsafe {
        bpf_tcp_raw_gen_syncookie_ipv4(
            iph.cast::<iphdr>(),
            probe.as_mut_ptr().cast::<tcphdr>(),
            COOKIE_PROBE_LEN as u32,
        )
    };
    if cookie < 0 {
        return Verdict::pass(Reason::InternalErrorPass);
    }
    // The helper returns the cookie in the low 32 bits and the MSS it encoded (the kernel's table value,
    // never above the client's MSS) in the next 16.
    let mss = (cookie >> 32) as u16;
    let cookie = cookie as u32;

    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Verdict::drop(Reason::MalformedDrop);
    };
    // SAFETY: bounds checked by `ptr_at`.
    let eth = unsafe { *eth };
    let syn = SynV4 {
        client_mac: eth.src,
        server_mac: eth.dst,
        client_ip: ip.saddr,
        server_ip: ip.daddr,
        client_port: tcp.source,
        server_port: tcp.dest,
        client_seq: u32::from_be_bytes(tcp.seq),
    };
    // What the client offered decides what the SYN-ACK agrees to; the agreement rides in our timestamp
    // (see `rauta_common::tcpopt`).
    let agreed = offer.agreed;
    // The coarse clock (the last tick's time, no clock source read): our timestamp keeps only its
    // 64 ms steps anyway (the low bits carry the agreement), and it is the same CLOCK_MONOTONIC the
    // other programs read, so it never runs ahead of theirs.
    // SAFETY: plain helper call.
    let now_ms = (unsafe { bpf_ktime_get_coarse_ns() } / 1_000_000) as u32;
    let ours = cookie_tsval(now_ms, agreed.wscale, agreed.sack != 0);
    // The window scale to announce (one more lookup here keeps the call within BPF's five arguments).
    let vip_wscale = RAUTA_VIP.get(0).map_or(DEFAULT_WSCALE, |vip| vip.wscale);
    let synack_options = syn_options(mss, &agreed, vip_wscale, (ours, offer.client_ts));

    // Resize to exactly the SYN-ACK (this also drops Ethernet padding of short frames). A Linux SYN (20
    // bytes of options) already has the SYN-ACK's length.
    let delta = SYNACK_V4_LEN as i32 - frame_len(ctx) as i32;
    // SAFETY: plain helper call on this program's context; packet pointers are taken again below.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return Verdict::pass(Reason::InternalErrorPass);
    }
    let Some(frame) = ptr_at::<[u16; SYNACK_V4_WORDS]>(ctx, 0) else {
        // The SYN may be cut to the SYN-ACK's length already: the stack would discard it anyway.
        return Verdict::drop(Reason::InternalErrorPass);
    };
    // SAFETY: bounds checked by `ptr_at`; 2-byte aligned (packet data starts so); nothing else refers to
    // the packet's bytes (every field of the SYN used above was copied out first).
    build_synack_v4_words(&syn, cookie, &synack_options, unsafe { &mut *frame });
    Verdict::tx(Reason::SynCookieSent)
}

/// The sum of `words` (as loaded) and `seed`, unfolded: at most 30 words of 0xffff, no overflow.
#[inline(always)]
fn sum_words<const N: usize>(words: &[u16; N], seed: u32) -> u32 {
    let mut sum = seed;
    let mut i = 0;
    while i < N {
        sum += u32::from(words[i]);
        i += 1;
    }
    sum
}

/// Length of the TCP header handed to the cookie helper: 20 bytes and one MSS option.
const COOKIE_PROBE_LEN: usize = TCP_LEN + 4;

/// The TCP header length of a Linux SYN (20 bytes of options): checked and read in the packet, no copy.
const LINUX_SYN_TCP_LEN: u32 = 40;

/// What the SYN offers that the SYN-ACK depends on.
struct Offer {
    /// The MSS offered (0 if none).
    mss: u16,
    /// What the SYN-ACK agrees to (`Agreed::for_syn` of the SYN's options).
    agreed: Agreed,
    /// The client's timestamp (0 without timestamps).
    client_ts: u32,
}

/// The SYN's offer if its TCP checksum is correct (`None` if not, or if its options could not be
/// read): its header is `len` bytes (a multiple of 4 in 20..=60 — a SYN without payload is all header).
///
/// A Linux SYN (40 bytes) is summed as 20 words in the packet and its options (MSS, SACK-permitted,
/// timestamps, NOP, window scale) are read from the same words: no copy into the scratch entry, no walk
/// record. Any other SYN is summed with one `bpf_csum_diff` over a copy and its options walked
/// (`options::prepare_xdp`). Both sums add 16-bit words as this little-endian machine loads them, i.e.
/// byte-swapped; the one's-complement sum of swapped words is the swapped sum, so the pseudo-header's
/// sum goes in swapped, and a correct segment still sums to 0xffff.
#[inline(always)]
fn checked_offer(ctx: &XdpContext, ip: &Ipv4Hdr, len: u32) -> Option<Offer> {
    let seed = u32::from(fold(pseudo_header_v4(ip.saddr, ip.daddr, len as u16)).swap_bytes());
    if len == LINUX_SYN_TCP_LEN {
        let header = ptr_at::<[u16; LINUX_SYN_TCP_LEN as usize / 2]>(ctx, ETH_LEN + IPV4_LEN)?;
        // SAFETY: bounds checked by `ptr_at`; 2-byte aligned (packet data starts so; the offset is
        // even).
        let words = unsafe { &*header };
        if fold(sum_words(words, seed)) != 0xffff {
            return None;
        }
        if let Some(offer) = linux_offer(words) {
            return Some(offer);
        }
    } else {
        let scratch = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP)?;
        // SAFETY: this CPU's scratch entry, valid for this run.
        let buf = unsafe { &mut (*scratch).tcp };
        // SAFETY: `buf` holds TCP_MAX_HEADER bytes and `len` is at most 60.
        let loaded = unsafe {
            bpf_xdp_load_bytes(
                ctx.ctx,
                (ETH_LEN + IPV4_LEN) as u32,
                buf.as_mut_ptr().cast(),
                len,
            )
        };
        if loaded != 0 {
            return None;
        }
        // Restated for the verifier at the call: at most 60 (the caller checked 20..=60).
        let size = core::hint::black_box(len) & 0x3c;
        // SAFETY: the helper reads `size` <= 60 bytes of `buf`, which holds 60.
        let sum = unsafe {
            bpf_csum_diff(
                core::ptr::null_mut(),
                0,
                buf.as_mut_ptr().cast(),
                size,
                seed,
            )
        };
        if sum < 0 || fold(sum as u32) != 0xffff {
            return None;
        }
    }
    options::prepare_xdp(ctx, len);
    let scratch = RAUTA_SCRATCH.get_ptr(SCRATCH_XDP)?;
    // SAFETY: this CPU's scratch entry, valid for this run; read at once.
    let (opts, walk) = unsafe { (&(*scratch).opts, &(*scratch).walk) };
    Some(Offer {
        mss: walk.mss as u16,
        agreed: Agreed::for_syn(walk),
        client_ts: timestamps(opts, walk).map_or(0, |(val, _)| val),
    })
}

/// The offer of a Linux SYN's options, read from its TCP header's 20 words as loaded (options from
/// word 10): the same values `options::prepare_xdp` finds for this layout. `None` for any other layout.
#[inline(always)]
fn linux_offer(w: &[u16; LINUX_SYN_TCP_LEN as usize / 2]) -> Option<Offer> {
    let bytes = |i: usize| w[i].to_ne_bytes();
    let scale = bytes(19);
    if w[10] != u16::from_ne_bytes([TCPOPT_MSS, 4])
        || w[12] != u16::from_ne_bytes([TCPOPT_SACK_PERM, 2])
        || w[13] != u16::from_ne_bytes([TCPOPT_TIMESTAMP, TCPOLEN_TIMESTAMP])
        || w[18] != u16::from_ne_bytes([TCPOPT_NOP, TCPOPT_WSCALE])
        || scale[0] != 3
    {
        return None;
    }
    let (mss, ts_high, ts_low) = (bytes(11), bytes(14), bytes(15));
    Some(Offer {
        mss: u16::from_be_bytes(mss),
        agreed: Agreed {
            wscale: if scale[1] > WSCALE_MAX {
                WSCALE_MAX
            } else {
                scale[1]
            },
            sack: 1,
            ts: 1,
            _pad: 0,
        },
        client_ts: u32::from_be_bytes([ts_high[0], ts_high[1], ts_low[0], ts_low[1]]),
    })
}
