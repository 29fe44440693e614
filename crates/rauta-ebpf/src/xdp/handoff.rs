//! The first data segment of a cookie connection: store it and turn the packet into the client's SYN to
//! the local listener (the TC egress program finishes the hand-off when the listener answers). See
//! `rauta_common::handoff` for the whole exchange.

use aya_ebpf::{
    bindings::{iphdr, tcphdr},
    helpers::generated::{
        bpf_csum_diff, bpf_tcp_raw_gen_syncookie_ipv4, bpf_xdp_adjust_tail, bpf_xdp_load_bytes,
    },
    programs::XdpContext,
};
use rauta_common::{
    checksum::fold,
    handoff::{
        COOKIE_PROBE_MSS, REPLAY_SYN_V4_LEN, REPLAY_SYN_V4_WORDS, build_replay_syn_v4_words,
        decode_cookie_mss, mss_covering,
    },
    maps::{
        FLOW_REPLAYED, FlowKey, FlowState, HELD_MAX, HeldKey, PENDING_BUF, PENDING_PAYLOAD_MAX,
        PendingSegment,
    },
    reason::Reason,
    synack::{SynV4, TCP_FIN, TCP_SYN, TCPOPT_MSS},
    tcpopt::{Agreed, WSCALE_NONE, rescale_window, shift_of, syn_options},
};

use super::Verdict;
use crate::{
    maps::{RAUTA_FLOWS, RAUTA_HELD, RAUTA_SCRATCH, SCRATCH_XDP},
    options,
    parse::{ETH_LEN, EthHdr, IPV4_LEN, Ipv4Hdr, TcpHdr, frame_len, ptr_at},
};

/// TCP PSH flag.
const TCP_PSH: u8 = 0x08;
/// Length of the SYN header the cookie's MSS is decoded with (20 + the MSS option).
const PROBE_LEN: u32 = 24;
/// `bpf_csum_diff` sums at most this many bytes per call on older kernels.
const CSUM_CHUNK: usize = 512;

/// Stores the segment (payload `payload_len` bytes after a `tcp_len`-byte header) under `key`, records the
/// flow as [`FLOW_REPLAYED`] and rewrites the packet into the client's SYN (ISN = seq − 1, the MSS the
/// cookie encodes), passed to the stack. `reason` says whether this is the first time or a retransmission.
#[inline(always)]
pub fn replay(
    ctx: &XdpContext,
    key: &FlowKey,
    tcp: &TcpHdr,
    tcp_len: u32,
    payload_len: u32,
    reason: Reason,
) -> Verdict {
    // A retransmission or a fallback (the cookie was validated the first time): only the MSS is needed.
    let mss = match RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) {
        // SAFETY: this CPU's scratch entry, valid for this run.
        Some(scratch) => probe_cookie(ctx, unsafe { &mut (*scratch).tcp }, tcp)
            .and_then(|probe| decode_cookie_mss(cookie_of(tcp), probe))
            .unwrap_or(0),
        None => 0,
    };
    replay_decoded(ctx, key, tcp, (tcp_len, payload_len), mss, reason, None)
}

/// [`replay`] with the MSS the cookie encodes already known (`mss`, 0 if it could not be decoded).
/// `lens` is (TCP header length, payload length).
///
/// When the routing decision comes next (`reason` is a hand-off the entry point routes, see
/// [`routed_next`]), the flow entry is only prepared in the scratch entry: a routing hit never needs it
/// (the splice takes the connection), so it is written by [`commit_flow`] on the way to Tier 3 only.
///
/// `agreed`: the options agreed with the client when the segment is a follow-up request of a splice
/// that moves (its timestamp echo carries no options then; `mss` is the splice's).
#[inline(always)]
pub fn replay_decoded(
    ctx: &XdpContext,
    key: &FlowKey,
    tcp: &TcpHdr,
    lens: (u32, u32),
    mss: u16,
    reason: Reason,
    agreed: Option<Agreed>,
) -> Verdict {
    let (tcp_len, payload_len) = lens;
    if payload_len > PENDING_PAYLOAD_MAX {
        return Verdict::drop(Reason::HandoffOversizeDrop);
    }
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) else {
        return Verdict::drop(Reason::InternalErrorPass);
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    crate::maps::first_request_started(scratch);
    let segment = &mut scratch.segment;
    if let Err(reason) = capture(ctx, segment, tcp, tcp_len, payload_len) {
        return Verdict::drop(reason);
    }
    // The client's timestamps: its own value goes on in the replayed SYN, its echo of our SYN-ACK's
    // says what was agreed (`rauta_common::tcpopt`).
    let ts = options::timestamps_xdp();
    let agreed = agreed.unwrap_or_else(|| Agreed::from_echo(ts.map(|(_, ecr)| ecr)));
    let (client_ts, ts_ours) = ts.unwrap_or((0, 0));
    scratch.segment.tsval = client_ts;

    // Whom the routing decision is for: `route::decide_stored` runs on this segment after the verdict.
    scratch.route.flow = *key;
    scratch.route.len = payload_len;

    let client_isn = u32::from_be_bytes(tcp.seq).wrapping_sub(1);
    let cookie = cookie_of(tcp);
    let mss = if mss != 0 {
        mss
    } else {
        // The cookie is from the previous minute (the helper accepts two): its MSS cannot be recomputed.
        // The listener's cookie will differ; TC records the offset.
        mss_covering(payload_len)
    };

    // Only a first replay cannot have an entry of the same segment in the other map. A segment the
    // routing decision comes to next is stored where its fate puts it (`commit_flow` for Tier 3, the
    // NAT port's slot for a splice): a hit pays no hash insert.
    if !routed_next(reason)
        && !crate::maps::store_pending(key, &scratch.segment, reason != Reason::HandoffSynReplayed)
    {
        return Verdict::drop(Reason::InternalErrorPass);
    }
    scratch.flow_state = FlowState {
        state: FLOW_REPLAYED,
        client_isn,
        cookie,
        offset: 0,
        mss: u32::from(mss),
        fins: 0,
        next_seq: client_isn.wrapping_add(1).wrapping_add(payload_len),
        held: 0,
        agreed,
        ts_ours,
        ts_delta: 0,
        peer_wscale: u32::from(WSCALE_NONE),
    };
    if routed_next(reason) {
        // The packet stays the data segment: a hit overwrites it with our SYN to the backend, so the
        // replayed SYN is written only on the way to Tier 3 (`write_replayed_syn`, after the decision).
        return Verdict::pass(reason);
    }
    if RAUTA_FLOWS.insert(key, &scratch.flow_state, 0).is_err() {
        return Verdict::drop(Reason::InternalErrorPass);
    }
    if !write_replayed_syn(ctx) {
        return Verdict::drop(Reason::InternalErrorPass);
    }
    Verdict::pass(reason)
}

/// Rewrites the packet, still the data segment [`replay_decoded`] captured, into the client's SYN to the
/// listener, from the flow entry it prepared in the scratch entry (ISN, the MSS the cookie encodes, the
/// options agreed) and the client's timestamp. False if it could not be written: the caller drops the
/// packet (the client retransmits).
#[inline(always)]
pub fn write_replayed_syn(ctx: &XdpContext) -> bool {
    let (Some(eth), Some(ip), Some(tcp)) = (
        ptr_at::<EthHdr>(ctx, 0),
        ptr_at::<Ipv4Hdr>(ctx, ETH_LEN),
        ptr_at::<TcpHdr>(ctx, ETH_LEN + IPV4_LEN),
    ) else {
        return false;
    };
    // SAFETY: bounds checked by `ptr_at`; copied, as the packet is rewritten below.
    let (eth, ip, tcp) = unsafe { (*eth, *ip, *tcp) };
    let Some(scratch) = RAUTA_SCRATCH.get_ptr(SCRATCH_XDP) else {
        return false;
    };
    // SAFETY: this CPU's scratch entry, valid for this run (a tail call keeps the CPU).
    let scratch = unsafe { &*scratch };
    let state = &scratch.flow_state;
    let flow = SynV4 {
        client_mac: eth.src,
        server_mac: eth.dst,
        client_ip: ip.saddr,
        server_ip: ip.daddr,
        client_port: tcp.source,
        server_port: tcp.dest,
        client_seq: state.client_isn,
    };
    // A SYN's window is never scaled; the listener is offered exactly what the client agreed to, with
    // the client's own window scale and timestamp.
    let agreed = state.agreed;
    let window = rescale_window(u16::from_be_bytes(tcp.window), shift_of(agreed.wscale), 0);
    let syn_opts = syn_options(
        state.mss as u16,
        &agreed,
        agreed.wscale,
        (scratch.segment.tsval, 0),
    );
    // Resized to exactly the SYN, then written where it lies, as words (every field is at an even
    // offset): no frame built in the scratch entry and stored with a helper.
    let delta = REPLAY_SYN_V4_LEN as i32 - frame_len(ctx) as i32;
    // SAFETY: plain helper call on this program's context; packet pointers are taken again below.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return false;
    }
    let Some(frame) = ptr_at::<[u16; REPLAY_SYN_V4_WORDS]>(ctx, 0) else {
        return false;
    };
    // SAFETY: bounds checked by `ptr_at`; 2-byte aligned (packet data starts so); every field of the
    // segment used here was copied out above.
    build_replay_syn_v4_words(&flow, window, &syn_opts, unsafe { &mut *frame });
    true
}

/// Holds a later segment of the first request (its seq is the flow's `next_seq`) until the listener's
/// socket exists; TC injects it behind the hand-off ACK. The packet itself is dropped.
#[inline(always)]
pub fn hold(
    ctx: &XdpContext,
    key: &FlowKey,
    flow: &mut FlowState,
    tcp: &TcpHdr,
    tcp_len: u32,
    payload_len: u32,
) -> Verdict {
    if flow.held >= HELD_MAX {
        // Beyond what Tier 1 holds: the client retransmits it once the socket exists.
        return Verdict::drop(Reason::HandoffPendingDrop);
    }
    if payload_len > PENDING_PAYLOAD_MAX {
        return Verdict::drop(Reason::HandoffOversizeDrop);
    }
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) else {
        return Verdict::drop(Reason::InternalErrorPass);
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    if let Err(reason) = capture(ctx, &mut scratch.segment, tcp, tcp_len, payload_len) {
        return Verdict::drop(reason);
    }
    scratch.segment.tsval = options::timestamps_xdp().map_or(0, |(val, _)| val);
    let segment = &scratch.segment;
    let held = HeldKey {
        flow: *key,
        index: flow.held,
    };
    // By reference on purpose: the 2 KB value must not be copied onto the stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let stored = RAUTA_HELD.insert(&held, &*segment, 0);
    if stored.is_err() {
        return Verdict::drop(Reason::InternalErrorPass);
    }
    flow.held += 1;
    flow.next_seq = flow.next_seq.wrapping_add(payload_len);
    Verdict::drop(Reason::HandoffSegmentHeld)
}

/// Copies the segment's payload (`payload_len` bytes, 1..=[`PENDING_PAYLOAD_MAX`], after a `tcp_len`-byte
/// header) into `segment` with its length, seq, PSH/FIN flags, window and payload sum.
#[inline(always)]
pub fn capture(
    ctx: &XdpContext,
    segment: &mut PendingSegment,
    tcp: &TcpHdr,
    tcp_len: u32,
    payload_len: u32,
) -> Result<(), Reason> {
    capture_unsummed(ctx, segment, tcp, tcp_len, payload_len)?;
    let Some(sum) = payload_sum(&mut segment.data, payload_len) else {
        return Err(Reason::InternalErrorPass);
    };
    segment.sum = u32::from(sum);
    Ok(())
}

/// [`capture`] without the payload sum (`sum` left as it was): for a follow-up request, which is only
/// parsed where it lies; a follow-up that moves the connection is captured again, with its sum, by
/// [`replay_decoded`]. Saves a `bpf_csum_diff` pass per kept-alive request.
#[inline(always)]
pub fn capture_unsummed(
    ctx: &XdpContext,
    segment: &mut PendingSegment,
    tcp: &TcpHdr,
    tcp_len: u32,
    payload_len: u32,
) -> Result<(), Reason> {
    // Restate 1..=PENDING_BUF for the verifier where the helper is called (black_box: LLVM must not fold
    // the mask into the caller's range check, which the verifier cannot follow).
    let n = ((core::hint::black_box(payload_len).wrapping_sub(1)) & (PENDING_BUF as u32 - 1)) + 1;
    // SAFETY: the buffer holds PENDING_BUF bytes and 1 <= n <= PENDING_BUF.
    let loaded = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            ETH_LEN as u32 + IPV4_LEN as u32 + tcp_len,
            segment.data.as_mut_ptr().cast(),
            n,
        )
    };
    if loaded != 0 {
        return Err(Reason::MalformedDrop);
    }
    describe(segment, tcp, payload_len);
    Ok(())
}

/// The segment's header fields [`capture`] records next to its payload.
#[inline(always)]
fn describe(segment: &mut PendingSegment, tcp: &TcpHdr, payload_len: u32) {
    segment.len = payload_len;
    segment.flags = u32::from(tcp.flags & (TCP_PSH | TCP_FIN));
    segment.window = u32::from(u16::from_be_bytes(tcp.window));
    segment.seq = u32::from_be_bytes(tcp.seq);
    segment.tsval = 0;
}

/// Whether the entry point runs the routing decision after a replay counted as `reason` (and so
/// [`commit_flow`] writes the flow entry, or the splice takes the connection).
#[inline(always)]
pub fn routed_next(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::HandoffSynReplayed | Reason::HandoffRetransmitReplayed
    )
}

/// Writes the stored segment and the flow entry [`replay_decoded`] prepared in the scratch entry: the
/// hand-off to Tier 3 goes on (its TC egress half sends the segment with the ACK). False if either
/// could not be written (the caller drops the packet; the client retransmits).
#[inline(always)]
pub fn commit_flow() -> bool {
    let Some(scratch) = RAUTA_SCRATCH.get_ptr(SCRATCH_XDP) else {
        return false;
    };
    // SAFETY: this CPU's scratch entry, valid for this run (a tail call keeps the CPU); by reference,
    // so the values are copied from the map, not through the stack.
    let (key, state, segment, reason) = unsafe {
        (
            &(*scratch).route.flow,
            &(*scratch).flow_state,
            &(*scratch).segment,
            (*scratch).handoff_reason,
        )
    };
    // A retransmission may have an entry of the same segment in the other map (see `replay_decoded`).
    crate::maps::store_pending(key, segment, reason != Reason::HandoffSynReplayed as u32)
        && RAUTA_FLOWS.insert(key, state, 0).is_ok()
}

/// The cookie the client's ACK acknowledges (ack − 1).
#[inline(always)]
pub fn cookie_of(tcp: &TcpHdr) -> u32 {
    u32::from_be_bytes(tcp.ack_seq).wrapping_sub(1)
}

/// Validates the cookie the segment acknowledges and decodes its MSS with one cookie generation (see
/// `rauta_common::handoff::decode_cookie_mss`): `Some(mss)` if valid (`mss` 0 when it is of an earlier
/// minute, validated by the kernel's check, whose MSS cannot be recomputed), `None` if invalid.
#[inline(always)]
pub fn check_cookie(ctx: &XdpContext, probe: &mut [u8; 60], tcp: &TcpHdr) -> Option<u16> {
    if let Some(generated) = probe_cookie(ctx, probe, tcp)
        && let Some(mss) = decode_cookie_mss(cookie_of(tcp), generated)
    {
        return Some(mss);
    }
    if super::ack::cookie_valid(ctx) {
        Some(0)
    } else {
        None
    }
}

/// The cookie the kernel issues now for the client's SYN (4-tuple and ISN = seq − 1 of the segment)
/// with an MSS of [`COOKIE_PROBE_MSS`], built in `probe` (the helper wants a TCP header whose length
/// the verifier can bound).
#[inline(always)]
fn probe_cookie(ctx: &XdpContext, probe: &mut [u8; 60], tcp: &TcpHdr) -> Option<u32> {
    let iph = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN)?;
    // The SYN the client sent, as far as the cookie depends on it: ports, ISN, MSS option.
    let seq = u32::from_be_bytes(tcp.seq).wrapping_sub(1).to_be_bytes();
    let mss = COOKIE_PROBE_MSS.to_be_bytes();
    let head = [
        tcp.source[0],
        tcp.source[1],
        tcp.dest[0],
        tcp.dest[1],
        seq[0],
        seq[1],
        seq[2],
        seq[3],
        0,
        0,
        0,
        0,
        (PROBE_LEN as u8 / 4) << 4,
        TCP_SYN,
        0,
        0,
        0,
        0,
        0,
        0,
        TCPOPT_MSS,
        4,
        mss[0],
        mss[1],
    ];
    let mut i = 0;
    while i < head.len() {
        probe[i] = head[i];
        i += 1;
    }
    // SAFETY: `iph` covers a whole IPv4 header in the packet; the probe is PROBE_LEN bytes long and its
    // data offset says so.
    let generated = unsafe {
        bpf_tcp_raw_gen_syncookie_ipv4(
            iph.cast::<iphdr>(),
            probe.as_mut_ptr().cast::<tcphdr>(),
            PROBE_LEN,
        )
    };
    if generated < 0 {
        None
    } else {
        Some(generated as u32)
    }
}

/// The payload's one's-complement sum of big-endian 16-bit words, folded (odd length padded with zero).
/// Zeroes up to 3 bytes after the payload so that `bpf_csum_diff`, which sums whole 32-bit words, reads
/// zeros there. `len` is at most [`PENDING_PAYLOAD_MAX`].
#[inline(always)]
fn payload_sum(data: &mut [u8; PENDING_BUF], len: u32) -> Option<u16> {
    let mut k = 0;
    while k < 3 {
        if let Some(b) = data.get_mut(len as usize + k) {
            *b = 0;
        }
        k += 1;
    }
    let padded = ((len + 3) & !3) as usize;
    let mut wsum: u32 = 0;
    let mut chunk = 0;
    while chunk < PENDING_BUF / CSUM_CHUNK {
        let at = chunk * CSUM_CHUNK;
        if at < padded {
            let left = padded - at;
            let size = if left > CSUM_CHUNK { CSUM_CHUNK } else { left };
            // Restate 1..=CSUM_CHUNK for the verifier (see `replay`).
            let size = ((core::hint::black_box(size as u32).wrapping_sub(1))
                & (CSUM_CHUNK as u32 - 1))
                + 1;
            // SAFETY: `at + size <= PENDING_BUF`; the helper only reads `data`.
            let r = unsafe {
                bpf_csum_diff(
                    core::ptr::null_mut(),
                    0,
                    data.as_mut_ptr().add(at).cast(),
                    size,
                    wsum,
                )
            };
            if r < 0 {
                return None;
            }
            wsum = r as u32;
        }
        chunk += 1;
    }
    // The helper sums 16-bit words as loaded by this little-endian machine, i.e. byte-swapped; the
    // one's-complement sum of swapped words is the swapped sum.
    Some(fold(wsum).swap_bytes())
}
