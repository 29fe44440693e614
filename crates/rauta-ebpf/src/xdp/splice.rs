//! Tier 1's splice to a backend, on the XDP side (see `rauta_common::splice` for the sequence arithmetic
//! and `docs/kernel-tiers.md` for the state machine):
//! - [`start`]: a routing hit turns the stored first segment's packet (already rewritten into the
//!   replayed SYN) into our SYN to the backend, from an allocated NAT port, out of the interface the FIB
//!   names;
//! - [`client_segment`]: every later client segment (a lost SYN re-sent on the client's retransmission,
//!   the request re-sent through TC, follow-up requests routed (`followup`), everything else translated);
//! - [`backend_segment`]: the backend's packets (SYN-ACK recorded and passed to TC ingress, which sends
//!   the ACK carrying the request; response heads framed (`response`); everything translated back to
//!   the client).

use aya_ebpf::{
    bindings::{BPF_FIB_LOOKUP_SRC, bpf_fib_lookup, xdp_action},
    helpers::generated::{
        bpf_fib_lookup as fib_lookup, bpf_ktime_get_ns, bpf_redirect, bpf_xdp_adjust_tail,
        bpf_xdp_store_bytes,
    },
    programs::XdpContext,
};
use rauta_common::{
    flow::fmix32,
    handoff::{REPLAY_SYN_V4_LEN, REPLAY_SYN_V4_WORDS, build_replay_syn_v4_words},
    maps::{FlowKey, STATUS_CLASS_UNKNOWN, VIP_ENABLED},
    reason::Reason,
    splice::{
        BackendLeg, FRAMING_LOST, FibEntry, LEG_READY, NAT_PROBES, NatKey, RST_V4_LEN,
        SPLICE_ACK_SENT, SPLICE_CLOSED, SPLICE_ESTABLISHED, SPLICE_FAILED, SPLICE_FIN_BACKEND,
        SPLICE_FIN_BACKEND_ACKED, SPLICE_FIN_CLIENT, SPLICE_FIN_CLIENT_ACKED, SPLICE_RESET,
        SPLICE_SYN_SENT, SYN_TRIES, SpliceConfig, SpliceState, build_rst_v4, claim_is_held,
        claim_is_quarantined, claim_is_stale, fib_cache_index, nat_port_candidate, next_claim,
        released_claim,
    },
    synack::{SynV4, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
    tcpopt::{
        Translation, WSCALE_NONE, csum_add_delta, rescale_window, shift_of, syn_options,
        translate_timestamp_words,
    },
};

use super::{
    FOLLOWUP_SAME, FOLLOWUP_SAME_HEAD, RESUME_FOLLOWUP, RESUME_RESPONSE, Resume,
    TAIL_CALL_FOLLOWUP, TAIL_CALL_RESPONSE, Verdict, followup, handoff, resume_take, route::Hit,
};
use crate::{
    maps::{
        RAUTA_FIB_CACHE, RAUTA_FLOWS, RAUTA_SCRATCH, RAUTA_SPLICE_CONFIG, RAUTA_SPLICES,
        SCRATCH_XDP, claim_of, forget_splice, leg_for, leg_of, nat_slot, release_nat, swap_claim,
    },
    parse::{ETH_LEN, EthHdr, IPV4_LEN, Ipv4Hdr, TCP_LEN, TcpHdr, frame_len, ptr_at},
};

/// `AF_INET` for the FIB lookup.
const AF_INET: u8 = 2;
/// IPv4 total length of our SYN, for the FIB's MTU check.
const SYN_IP_LEN: u16 = (REPLAY_SYN_V4_LEN - ETH_LEN) as u16;

/// Starts the splice of a routing hit: the packet holds the replayed SYN `handoff::replay` built and the
/// captured segment is in the scratch entry (stored here: see `maps::store_request`). On success the packet is our SYN to the backend and the verdict
/// forwards it. `Err(Some(reason))`: the hit falls back to Tier 3 (the replayed SYN passes) and `reason`
/// is counted; `Err(None)`: splicing is switched off.
#[inline(always)]
pub fn start(ctx: &XdpContext, hit: &Hit) -> Result<Verdict, Option<Reason>> {
    let Some(config) = RAUTA_SPLICE_CONFIG.get(0) else {
        return Err(None);
    };
    if config.enabled != VIP_ENABLED {
        return Err(None);
    }
    let key = hit.flow;
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) else {
        return Err(Some(Reason::InternalErrorPass));
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    // The flow entry `handoff::replay_decoded` prepared (not written to RAUTA_FLOWS: a splice does not
    // need it).
    let flow = scratch.flow_state;
    let (client_isn, cookie, mss) = (flow.client_isn, flow.cookie, flow.mss);
    let Some(vip) = crate::maps::RAUTA_VIP.get(0) else {
        return Err(Some(Reason::InternalErrorPass));
    };
    if hit.len > mss {
        return Err(Some(Reason::SpliceTooLarge));
    }
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Err(Some(Reason::InternalErrorPass));
    };
    // SAFETY: bounds checked by `ptr_at`. The replayed SYN kept the client's MACs: dst ours, src its.
    let eth = unsafe { *eth };
    // SAFETY: reading a field of this program's context.
    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };

    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(route) = route_to(ctx, hit.endpoint.addr_be, ingress, now) else {
        return Err(Some(Reason::SpliceNoPath));
    };
    let node_addr = route.node_addr;

    let mut nat = NatKey {
        backend_addr: hit.endpoint.addr_be,
        node_addr,
        backend_port: hit.endpoint.port_be,
        nat_port: 0,
    };
    let Some((slot, nat_claim)) = claim_nat_port(&key, &mut nat, now, config) else {
        return Err(Some(Reason::SpliceNatExhausted));
    };
    // Not ready: the backend segments look up the splice until it is established. Written in place:
    // no other CPU reads or changes a slot whose claim is this fresh (see `NAT_MAP`).
    // SAFETY: a slot pointer from a successful lookup, valid as long as the map.
    unsafe { slot.write(BackendLeg::claimed(key, cookie, nat, nat_claim)) };

    // The request, for TC ingress (our ACK carries it) and the resends: in the NAT port's own slot (a
    // copy, no insert), or where a hand-off keeps it when it is longer or the port has no slot.
    let again = scratch.handoff_reason != Reason::HandoffSynReplayed as u32;
    let in_slot = crate::maps::store_request(nat.nat_port, nat_claim, &scratch.segment);
    if !in_slot && !crate::maps::store_pending(&key, &scratch.segment, again) {
        release_nat(nat.nat_port, nat_claim, false);
        return Err(Some(Reason::InternalErrorPass));
    }

    // Our ISN on the backend leg: the kernel's clock (one tick per 64 ns, as the kernel's own ISNs)
    // plus a hash of the leg, so that it grows between two uses of the same 4-tuple (see the module
    // docs of `rauta_common::splice`).
    let leg_isn = ((now >> 6) as u32).wrapping_add(fmix32(
        nat.backend_addr ^ u32::from(nat.nat_port) ^ (u32::from(nat.backend_port) << 16),
    ));
    // Built in the scratch entry: 120 bytes next to the FIB lookup and the SYN's arrays exceed the
    // 512-byte stack.
    scratch.splice = SpliceState {
        state: SPLICE_SYN_SENT,
        client_isn,
        cookie,
        leg_isn,
        backend_isn: 0,
        request_len: hit.len,
        mss,
        fins: 0,
        client_fin_end: 0,
        backend_fin_end: 0,
        tries: 1,
        window: scratch.segment.window,
        service: hit.service,
        client_ifindex: ingress,
        backend_ifindex: route.ifindex,
        node_addr,
        backend_addr: hit.endpoint.addr_be,
        nat_port: nat.nat_port,
        backend_port: hit.endpoint.port_be,
        client_mac: eth.src,
        vip_mac: eth.dst,
        node_mac: route.node_mac,
        backend_mac: route.backend_mac,
        agreed: flow.agreed,
        ts_ours: flow.ts_ours,
        ts_client: scratch.segment.tsval,
        // A microsecond clock (1,024 ns ticks): see `SpliceState::ts_leg`.
        ts_leg: (now >> 10) as u32,
        ts_offset: 0,
        backend_wscale: WSCALE_NONE,
        vip_wscale: vip.wscale,
        request_in_slot: u16::from(in_slot),
        next_request: client_isn.wrapping_add(1).wrapping_add(hit.len),
        requests: 1,
        head_request: u32::from(scratch.segment.data[0] == b'H'),
        unframed: 0,
        nat_claim,
    };
    if RAUTA_SPLICES.insert(key, &scratch.splice, 0).is_err() {
        // Nothing was sent on the leg: free for anyone at once. The hand-off this falls back to
        // stores the request again (`handoff::commit_flow`).
        release_nat(nat.nat_port, nat_claim, false);
        return Err(Some(Reason::InternalErrorPass));
    }
    // The connection is the splice's now, not a hand-off's. Only a retransmitted first segment (replayed
    // again) has a flow entry, and a stored request, from its first time.
    if scratch.handoff_reason == Reason::HandoffRetransmitReplayed as u32 {
        let _ = RAUTA_FLOWS.remove(key);
        if in_slot {
            crate::maps::forget_pending(&key);
        }
    }
    Ok(send_syn(ctx, &scratch.splice, Reason::SpliceSynSent))
}

/// The way to `backend_addr` for a client packet that came in on `ingress`: the cached answer if it is
/// younger than `FIB_CACHE_NS` (see `rauta_common::splice::FIB_CACHE_MAP`), else `bpf_fib_lookup`'s,
/// which is cached. `None`: no route or neighbour.
#[inline(always)]
fn route_to(ctx: &XdpContext, backend_addr: u32, ingress: u32, now: u64) -> Option<FibEntry> {
    let cache = RAUTA_FIB_CACHE.get_ptr_mut(fib_cache_index(backend_addr));
    if let Some(entry) = cache {
        // SAFETY: a map value pointer, valid as long as the map; copied at once (another CPU may be
        // writing a newer answer for the same backend: either is a valid route).
        let cached = unsafe { *entry };
        if cached.fresh_for(backend_addr, ingress, now) {
            return Some(cached);
        }
    }
    // Zeroed where it lies, with word stores (see `crate::zero`: a zeroed value moved here was turned
    // back into two calls of the byte-wise `memset`, ~250 instructions per first request).
    let mut fib = core::mem::MaybeUninit::<bpf_fib_lookup>::uninit();
    // SAFETY: `fib` is valid for writes of the struct, and all zero is a valid value of this plain C
    // struct of integers and unions of integers.
    let fib = unsafe {
        crate::zero::zero_in_place(fib.as_mut_ptr());
        fib.assume_init_mut()
    };
    fib.family = AF_INET;
    fib.l4_protocol = 6;
    fib.__bindgen_anon_1.tot_len = SYN_IP_LEN;
    fib.ifindex = ingress;
    fib.__bindgen_anon_4.ipv4_dst = backend_addr;
    // SAFETY: helper call with a stack struct of the size passed.
    let rc = unsafe {
        fib_lookup(
            ctx.ctx.cast(),
            &mut *fib,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            BPF_FIB_LOOKUP_SRC,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: the lookup filled the IPv4 member.
    let node_addr = unsafe { fib.__bindgen_anon_3.ipv4_src };
    if node_addr == 0 {
        return None;
    }
    let route = FibEntry {
        checked_ns: now,
        backend_addr,
        ingress,
        ifindex: fib.ifindex,
        node_addr,
        node_mac: fib.smac,
        backend_mac: fib.dmac,
        _pad: 0,
    };
    if let Some(entry) = cache {
        // SAFETY: as above; written whole.
        unsafe { *entry = route };
    }
    Some(route)
}

/// Claims a NAT port for the client `key`'s leg `nat` (its `nat_port` set to the port claimed, network
/// order): up to `NAT_PROBES` candidate slots, each taken by one compare-and-swap if it is free, or if
/// it is stale (held for longer than `LEG_STALE_NS` and no splice names it: its splice was evicted).
/// The slot and the claim value, or `None`: every candidate is in use.
#[inline(always)]
fn claim_nat_port(
    key: &FlowKey,
    nat: &mut NatKey,
    now: u64,
    config: &SpliceConfig,
) -> Option<(*mut BackendLeg, u64)> {
    let span = u32::from(config.port_max.wrapping_sub(config.port_min)) + 1;
    let cursor = crate::maps::RAUTA_NAT_CURSOR.get_ptr_mut(0);
    let mut attempt = 0;
    while attempt < NAT_PROBES {
        // First this CPU's cursor (the port after its last claim: a neighbouring, warm slot), then
        // ports hashed from the client and the clock.
        let port = match cursor {
            // SAFETY: this CPU's own value, from a successful lookup.
            Some(cursor) if attempt == 0 => config
                .port_min
                .wrapping_add((unsafe { *cursor } % span) as u16),
            _ => nat_port_candidate(key, now as u32, attempt, config.port_min, config.port_max),
        };
        attempt += 1;
        let port_be = port.to_be();
        let Some(slot) = nat_slot(port_be) else {
            continue;
        };
        let current = claim_of(slot);
        if claim_is_held(current) {
            if !(claim_is_stale(current, now) && abandoned(slot, current)) {
                continue;
            }
        } else if claim_is_quarantined(current, now) && last_used_with(slot, nat) {
            // Released without a clean close moments ago: the backend may still hold the old
            // connection on this 4-tuple. Other backends may take the port.
            continue;
        }
        let claim = next_claim(current, now);
        if swap_claim(slot, current, claim) {
            if claim_is_held(current) {
                crate::maps::count(Reason::SpliceNatReclaimed);
            }
            nat.nat_port = port_be;
            if let Some(cursor) = cursor {
                // SAFETY: this CPU's own value, from a successful lookup.
                unsafe { *cursor = u32::from(port.wrapping_sub(config.port_min)) + 1 };
            }
            return Some((slot, claim));
        }
    }
    None
}

/// Whether the free `slot`'s last leg was `nat`'s 4-tuple (its `nat_port` aside: it is the slot's), i.e.
/// the same backend address and port from the same node address. The leg stays in a slot after its
/// release; if another CPU is claiming the slot meanwhile, its claim word changed and the caller's
/// compare-and-swap fails anyway.
#[inline(always)]
fn last_used_with(slot: *mut BackendLeg, nat: &NatKey) -> bool {
    // SAFETY: a slot pointer from a successful lookup; read in place.
    let last = unsafe { (*slot).nat };
    last.backend_addr == nat.backend_addr
        && last.backend_port == nat.backend_port
        && last.node_addr == nat.node_addr
}

/// Whether the slot held with `claim` has lost its splice: no splice of the slot's client connection
/// holds this claim (evicted from the LRU `RAUTA_SPLICES`, or replaced by a newer connection).
#[inline(always)]
fn abandoned(slot: *mut BackendLeg, claim: u64) -> bool {
    // SAFETY: a slot pointer from a successful lookup; a claim older than `LEG_STALE_NS` has its flow
    // written long ago.
    let flow = unsafe { (*slot).flow };
    match RAUTA_SPLICES.get_ptr(&flow) {
        // SAFETY: a pointer from a successful lookup, read at once.
        Some(splice) => unsafe { (*splice).nat_claim != claim },
        None => true,
    }
}

/// Writes our SYN to the backend over the packet (resized to it) and forwards it.
#[inline(always)]
fn send_syn(ctx: &XdpContext, s: &SpliceState, reason: Reason) -> Verdict {
    let syn = SynV4 {
        client_mac: s.node_mac,
        server_mac: s.backend_mac,
        client_ip: s.node_addr.to_ne_bytes(),
        server_ip: s.backend_addr.to_ne_bytes(),
        client_port: s.nat_port.to_ne_bytes(),
        server_port: s.backend_port.to_ne_bytes(),
        client_seq: s.leg_isn,
    };
    // The backend is offered what the client agreed to, with the client's window scale (the client's
    // windows then mean the same on both legs) and Tier 1's clock as timestamp (see
    // `SpliceState::ts_leg`). A SYN's window is unscaled.
    let window = rescale_window(s.window as u16, shift_of(s.agreed.wscale), 0);
    let options = syn_options(s.mss as u16, &s.agreed, s.agreed.wscale, (s.ts_leg, 0));
    // Written where the packet lies, as words (as the replayed SYN: `handoff::write_replayed_syn`).
    let delta = REPLAY_SYN_V4_LEN as i32 - frame_len(ctx) as i32;
    // SAFETY: plain helper call on this program's context; packet pointers are taken again below.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return Verdict::drop(Reason::InternalErrorPass);
    }
    let Some(frame) = ptr_at::<[u16; REPLAY_SYN_V4_WORDS]>(ctx, 0) else {
        return Verdict::drop(Reason::InternalErrorPass);
    };
    // SAFETY: bounds checked by `ptr_at`; 2-byte aligned (packet data starts so); `s` is map memory.
    build_replay_syn_v4_words(&syn, window, &options, unsafe { &mut *frame });
    forward(ctx, s.backend_ifindex, reason)
}

/// A client segment of the splice `key` (state at `splice`).
#[inline(always)]
pub fn client_segment(
    ctx: &XdpContext,
    key: &FlowKey,
    splice: *mut SpliceState,
    tcp: &TcpHdr,
    tcp_len: u32,
    payload_len: u32,
) -> Verdict {
    // SAFETY: a pointer from a successful map lookup, valid for this run (RCU).
    let s = unsafe { &mut *splice };
    let flags = tcp.flags;
    let seq = u32::from_be_bytes(tcp.seq);
    if s.state == SPLICE_RESET {
        // The endpoint is gone: answer with a RST at the sequence number the client acknowledges.
        forget_splice(key);
        if flags & TCP_RST != 0 {
            return Verdict::drop(Reason::SpliceReset);
        }
        return send_rst(
            ctx,
            (s.vip_mac, s.client_mac),
            (key.vip_addr, key.vip_port),
            (key.client_addr, key.client_port),
            u32::from_be_bytes(tcp.ack_seq),
            s.client_ifindex,
        );
    }
    let first =
        payload_len > 0 && seq == s.first_seq() && flags & (TCP_SYN | TCP_RST | TCP_ACK) == TCP_ACK;

    if s.state == SPLICE_SYN_SENT || s.state == SPLICE_FAILED {
        if !first {
            if flags & TCP_RST != 0 {
                forget_splice(key);
            }
            return Verdict::drop(Reason::SpliceStrayDrop);
        }
        if s.state == SPLICE_FAILED || s.tries >= SYN_TRIES {
            // The backend refused or stays silent: Tier 3 takes the connection (it retries another
            // endpoint or answers 502/503).
            forget_splice(key);
            crate::maps::forget_pending(key);
            return handoff::replay(ctx, key, tcp, tcp_len, payload_len, Reason::SpliceFallback);
        }
        s.tries += 1;
        return send_syn(ctx, s, Reason::SpliceSynResent);
    }

    if payload_len > 0 {
        if first && s.state == SPLICE_ACK_SENT {
            // Our ACK with the request may have been lost: TC ingress sends it again.
            return Verdict::pass(Reason::SpliceRequestResend);
        }
        if s.state != SPLICE_ESTABLISHED || flags & (TCP_SYN | TCP_RST | TCP_ACK) != TCP_ACK {
            return Verdict::drop(Reason::SpliceFollowupDrop);
        }
        let position = seq.wrapping_sub(s.next_request);
        if position == 0 {
            // A request starts here: routed by its own head (`followup`), then resumed here.
            match resume_take(RESUME_FOLLOWUP, key, seq) {
                Some(outcome @ (FOLLOWUP_SAME | FOLLOWUP_SAME_HEAD)) => {
                    s.next_request = seq.wrapping_add(payload_len);
                    s.requests = s.requests.wrapping_add(1);
                    s.head_request = u32::from(outcome == FOLLOWUP_SAME_HEAD);
                    crate::maps::count(Reason::SpliceFollowupSame);
                    if s.unframed != 0 {
                        // Its response will not be read: counted now, as of unknown status.
                        crate::maps::count_status(STATUS_CLASS_UNKNOWN);
                    }
                }
                Some(_) => return Verdict::drop(Reason::InternalErrorPass),
                None => {
                    let client_ack = u32::from_be_bytes(tcp.ack_seq);
                    return match followup::capture(ctx, key, tcp, tcp_len, payload_len, client_ack)
                    {
                        Ok(()) => Verdict {
                            action: TAIL_CALL_FOLLOWUP,
                            reason: Reason::SpliceFollowupSame,
                        },
                        Err(reason) => Verdict::drop(reason),
                    };
                }
            }
        } else if position < 1 << 31 {
            // Past a gap: the client retransmits what is missing first.
            return Verdict::drop(Reason::SpliceFollowupDrop);
        }
        // Before `next_request`: a retransmission of what the backend already has; it goes on.
    }

    let ack = u32::from_be_bytes(tcp.ack_seq);
    let new_ack = if flags & TCP_ACK != 0 {
        s.to_backend_ack(ack)
    } else {
        ack
    };
    let done = if flags & TCP_RST != 0 {
        true
    } else {
        if flags & TCP_FIN != 0 {
            s.fins |= SPLICE_FIN_CLIENT;
            s.client_fin_end = seq.wrapping_add(1);
            // The backend's ACK of it must be seen by the splice: no more backend segments translated
            // from the leg alone.
            if let Some(leg) = leg_of(s) {
                // SAFETY: a pointer from a successful map lookup, valid for this run (RCU).
                unsafe {
                    (*leg).ready = 0;
                    (*leg).client_ready = 0;
                }
            }
        }
        if flags & TCP_ACK != 0
            && s.fins & SPLICE_FIN_BACKEND != 0
            && ack.wrapping_sub(s.backend_fin_end) < 1 << 31
        {
            s.fins |= SPLICE_FIN_BACKEND_ACKED;
        }
        // Over once both FINs are acknowledged (a simultaneous close sends two "last" ACKs, and the
        // backend must not be left with an unacknowledged FIN whose NAT port is already reused).
        s.fins == SPLICE_CLOSED
    };
    // Read in place: everything the rewrite needs is taken from the entry before it may be deleted
    // (another CPU may reuse the memory at once), so no copy of the state is made.
    let leg = Leg {
        dst_mac: s.backend_mac,
        src_mac: s.node_mac,
        saddr: s.node_addr,
        daddr: s.backend_addr,
        sport: s.nat_port,
        dport: s.backend_port,
        seq: s.to_backend_seq(seq),
        ack: new_ack,
    };
    let options = Options {
        tcp_len,
        // The client's echoes are in Tier 1's clock, its SACK blocks in its view of the backend's
        // sequence numbers.
        translation: Translation {
            tsval: s.ts_leg_delta(),
            tsecr: s.ts_offset,
            sack: s.server_offset(),
        },
        active: s.agreed.ts != 0 || s.agreed.sack != 0,
        // A backend that did not take up window scaling reads the client's windows unscaled.
        window: (
            shift_of(s.agreed.wscale),
            0,
            s.agreed.scaled() && s.backend_wscale == WSCALE_NONE,
        ),
    };
    let ifindex = s.backend_ifindex;
    if done {
        forget_splice(key);
    }
    rewrite(ctx, leg, options, ifindex, Reason::SpliceClientTranslated)
}

/// A client's pure ACK (no data, SYN, FIN or RST) of an established splice that neither side has
/// closed, translated from the backend leg `leg` alone (see `rauta_common::splice::CLIENT_INDEX_MAP`):
/// the same rewrite as [`client_segment`]'s, which changes no splice state for such a segment.
#[inline(always)]
pub fn client_ack(ctx: &XdpContext, leg: &BackendLeg, tcp: &TcpHdr, tcp_len: u32) -> Verdict {
    let headers = Leg {
        dst_mac: leg.backend_mac,
        src_mac: leg.node_mac,
        saddr: leg.nat.node_addr,
        daddr: leg.nat.backend_addr,
        sport: leg.nat.nat_port,
        dport: leg.nat.backend_port,
        seq: leg.to_backend_seq(u32::from_be_bytes(tcp.seq)),
        ack: leg.to_backend_ack(u32::from_be_bytes(tcp.ack_seq)),
    };
    let options = Options {
        tcp_len,
        translation: leg.to_backend,
        active: leg.options != 0,
        window: (leg.client_window, 0, leg.client_rescale != 0),
    };
    rewrite(
        ctx,
        headers,
        options,
        leg.backend_ifindex,
        Reason::SpliceClientTranslated,
    )
}

/// A packet to a NAT port: if it belongs to a splice, act on it; `None` if it does not. One lookup
/// (`RAUTA_NAT`) for a segment of an established splice without SYN, FIN or RST while the client has
/// not closed (`BackendLeg::ready`); the splice is looked up for everything else.
#[inline(always)]
pub fn backend_segment(
    ctx: &XdpContext,
    ip: &Ipv4Hdr,
    tcp: &TcpHdr,
    tcp_len: u32,
    payload_len: u32,
) -> Option<Verdict> {
    let nat = NatKey {
        backend_addr: u32::from_ne_bytes(ip.saddr),
        node_addr: u32::from_ne_bytes(ip.daddr),
        backend_port: u16::from_ne_bytes(tcp.source),
        nat_port: u16::from_ne_bytes(tcp.dest),
    };
    let slot = leg_for(&nat)?;
    // SAFETY: a slot pointer from a successful lookup (array values live as long as the map).
    let leg = unsafe { &mut *slot };
    let key = leg.flow;
    let flags = tcp.flags;
    let seq = u32::from_be_bytes(tcp.seq);
    let ack = u32::from_be_bytes(tcp.ack_seq);

    let mut done = false;
    if leg.ready != LEG_READY || flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0 {
        let Some(splice) = RAUTA_SPLICES.get_ptr_mut(key) else {
            // The splice was evicted: its port is freed here once the claim is stale (a fresh claim
            // has no splice for the moment its start takes).
            let claim = leg.claim;
            // SAFETY: plain helper call.
            let now = unsafe { bpf_ktime_get_ns() };
            if claim_is_stale(claim, now) {
                // The leg's end is unknown: quarantined like any leg that did not close cleanly.
                let _ = swap_claim(slot, claim, released_claim(claim, now, true));
            }
            return None;
        };
        // SAFETY: a pointer from a successful map lookup, valid for this run (RCU).
        let s = unsafe { &mut *splice };
        if let Some(verdict) = backend_control(ctx, &key, s, leg, (flags, seq, ack), payload_len) {
            return Some(verdict);
        }
        // Over with a RST, or once both FINs are acknowledged (a simultaneous close sends two "last"
        // ACKs, and the client must not be left with an unacknowledged FIN).
        done = flags & TCP_RST != 0 || s.fins == SPLICE_CLOSED;
        if s.state != SPLICE_ESTABLISHED {
            // Before the backend acknowledged the request: translated, not framed.
            return Some(translate_to_client(
                ctx,
                leg,
                tcp_len,
                (seq, ack, flags),
                &key,
                done,
            ));
        }
    }
    if payload_len > 0 {
        let start = leg.to_client_seq(seq);
        let end = start.wrapping_add(payload_len);
        let ahead = end.wrapping_sub(leg.backend_end);
        if ahead != 0 && ahead < 1 << 31 {
            leg.backend_end = end;
        }
        // A response head starts in this segment: framed by `rauta_xdp_response`, then resumed here.
        if leg.framing != FRAMING_LOST
            && leg.response_next.wrapping_sub(start) < payload_len
            && resume_take(RESUME_RESPONSE, &key, seq).is_none()
        {
            if let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) {
                // SAFETY: this CPU's scratch entry, valid for this run.
                unsafe {
                    (*scratch).resume = Resume {
                        kind: RESUME_RESPONSE,
                        flow: key,
                        seq,
                        ack: 0,
                        outcome: 0,
                        offset: leg.response_next.wrapping_sub(start),
                        payload_at: (ETH_LEN + IPV4_LEN) as u32 + tcp_len,
                        payload_len,
                    }
                };
                return Some(Verdict {
                    action: TAIL_CALL_RESPONSE,
                    reason: Reason::SpliceBackendTranslated,
                });
            }
        }
    }
    Some(translate_to_client(
        ctx,
        leg,
        tcp_len,
        (seq, ack, flags),
        &key,
        done,
    ))
}

/// The backend segments the leg alone cannot judge (handshake, RST, FIN, a splice reset or not yet
/// established): the state machine on the splice `s`. `Some(verdict)`: the segment's fate; `None`: it
/// is translated to the client (after `s.fins` and `leg`'s copy are brought up to date).
#[inline(always)]
fn backend_control(
    ctx: &XdpContext,
    key: &FlowKey,
    s: &mut SpliceState,
    leg: &mut BackendLeg,
    (flags, seq, ack): (u8, u32, u32),
    payload_len: u32,
) -> Option<Verdict> {
    if flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN | TCP_ACK {
        let fresh = s.state == SPLICE_SYN_SENT;
        let again = s.state == SPLICE_ACK_SENT && seq == s.backend_isn;
        if ack != s.leg_isn.wrapping_add(1) || !(fresh || again) {
            return Some(Verdict::drop(Reason::SpliceStrayDrop));
        }
        s.backend_isn = seq;
        s.state = SPLICE_ACK_SENT;
        return Some(Verdict::pass(Reason::SpliceSynAck));
    }
    if s.state == SPLICE_SYN_SENT {
        if flags & TCP_RST != 0 {
            s.state = SPLICE_FAILED;
            return Some(Verdict::drop(Reason::SpliceBackendRefused));
        }
        return Some(Verdict::drop(Reason::SpliceStrayDrop));
    }
    if s.state == SPLICE_RESET {
        // The endpoint left the route table: this segment becomes the client's RST.
        let (macs, rst_seq, ifindex) = (
            (s.vip_mac, s.client_mac),
            s.to_client_seq(seq),
            s.client_ifindex,
        );
        forget_splice(key);
        return Some(send_rst(
            ctx,
            macs,
            (key.vip_addr, key.vip_port),
            (key.client_addr, key.client_port),
            rst_seq,
            ifindex,
        ));
    }
    if s.state == SPLICE_FAILED || flags & TCP_SYN != 0 {
        return Some(Verdict::drop(Reason::SpliceStrayDrop));
    }
    // The backend's SYN-ACK and its options (TC ingress) are recorded: the translation is complete.
    leg.copy_translation(s);
    if s.state == SPLICE_ACK_SENT
        && flags & TCP_ACK != 0
        && ack.wrapping_sub(s.leg_isn.wrapping_add(1)) >= s.request_len
        && ack.wrapping_sub(s.leg_isn.wrapping_add(1)) < 1 << 31
    {
        s.state = SPLICE_ESTABLISHED;
        // The backend has the request: nothing will resend it.
        crate::maps::forget_request(key, s.request_in_slot, s.request_len);
        // From here on the leg alone translates the backend's segments, until the client closes. Set
        // only here (a later segment on another CPU must not set it again after the client's FIN
        // cleared it).
        if s.fins & SPLICE_FIN_CLIENT == 0 {
            leg.ready = LEG_READY;
        }
        // The client's pure ACKs likewise, found through the client index, while neither side has
        // closed (a FIN below clears it again).
        if s.fins == 0 {
            leg.client_ready = LEG_READY;
            crate::maps::index_client(key, s.nat_port, s.nat_claim);
        }
    }
    if flags & TCP_RST != 0 {
        return None;
    }
    if flags & TCP_FIN != 0 {
        // The client's ACK of this FIN must be seen by the splice. Cleared before the FIN is
        // forwarded: the client cannot acknowledge it earlier.
        leg.client_ready = 0;
        s.fins |= SPLICE_FIN_BACKEND;
        s.backend_fin_end = s
            .to_client_seq(seq)
            .wrapping_add(payload_len)
            .wrapping_add(1);
    }
    if flags & TCP_ACK != 0
        && s.fins & SPLICE_FIN_CLIENT != 0
        && s.to_client_ack(ack).wrapping_sub(s.client_fin_end) < 1 << 31
    {
        s.fins |= SPLICE_FIN_CLIENT_ACKED;
    }
    None
}

/// Translates a backend segment to the client from its leg `leg` (read in place: everything the
/// rewrite needs is taken before the splice may be forgotten, when `done`).
#[inline(always)]
fn translate_to_client(
    ctx: &XdpContext,
    leg: &BackendLeg,
    tcp_len: u32,
    (seq, ack, flags): (u32, u32, u8),
    key: &FlowKey,
    done: bool,
) -> Verdict {
    let new_ack = if flags & TCP_ACK != 0 {
        leg.to_client_ack(ack)
    } else {
        ack
    };
    let headers = Leg {
        dst_mac: leg.client_mac,
        src_mac: leg.vip_mac,
        saddr: key.vip_addr,
        daddr: key.client_addr,
        sport: key.vip_port,
        dport: key.client_port,
        seq: leg.to_client_seq(seq),
        ack: new_ack,
    };
    let options = Options {
        tcp_len,
        translation: leg.translation,
        active: leg.options != 0,
        window: (leg.window_from, leg.window_to, leg.rescale != 0),
    };
    let ifindex = leg.client_ifindex;
    if done {
        forget_splice(key);
    }
    rewrite(
        ctx,
        headers,
        options,
        ifindex,
        Reason::SpliceBackendTranslated,
    )
}

/// The headers a translated segment leaves with. Addresses and ports in network order, seq/ack in host
/// order.
struct Leg {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    saddr: u32,
    daddr: u32,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
}

/// What happens to a translated segment's options and window.
struct Options {
    /// The TCP header's length.
    tcp_len: u32,
    /// Added to timestamps and SACK edges.
    translation: Translation,
    /// Whether the connection has options to translate.
    active: bool,
    /// The window's scale on arrival and on departure, and whether they differ.
    window: (u8, u8, bool),
}

/// Rewrites the packet's Ethernet, IPv4 and TCP headers to `leg` and its options as `options` says
/// (checksums updated incrementally) and forwards it out of `ifindex`.
///
/// Every field it changes sits at an even offset of a frame without IP options, so the headers are
/// read and written as 16-bit words in place: the header structs have alignment 1, and their byte
/// arrays compiled to a load, shift and or per byte (and a stack spill each), most of an established
/// segment's instructions. Checksum arithmetic is on the words' host-order values (RFC 1624).
#[inline(always)]
fn rewrite(ctx: &XdpContext, leg: Leg, options: Options, ifindex: u32, reason: Reason) -> Verdict {
    let mut delta = 0;
    if options.active && options.tcp_len > TCP_LEN as u32 {
        let Some(moved) = translate_options(ctx, options.tcp_len, &options.translation) else {
            return Verdict::drop(Reason::InternalErrorPass);
        };
        delta = moved;
    }
    let Some(words) = ptr_at::<[u16; HEADER_WORDS]>(ctx, 0) else {
        return Verdict::drop(Reason::MalformedDrop);
    };
    // SAFETY: bounds checked by `ptr_at`; packet data starts at least 2-byte aligned (XDP headroom),
    // so the words are aligned; nothing else refers to these bytes.
    let w = unsafe { &mut *words };
    put_mac(w, 0, leg.dst_mac);
    put_mac(w, 3, leg.src_mac);

    // The addresses: in the IPv4 header and in the TCP pseudo-header alike.
    let mut addresses = 0;
    addresses += put_u32_ne(w, W_SADDR, leg.saddr);
    addresses += put_u32_ne(w, W_DADDR, leg.daddr);
    w[W_IP_CHECK] = csum_add_delta(u16::from_be(w[W_IP_CHECK]), addresses).to_be();

    let mut tcp = delta + addresses;
    tcp += put_word(w, W_SPORT, leg.sport);
    tcp += put_word(w, W_DPORT, leg.dport);
    tcp += put_u32_ne(w, W_SEQ, leg.seq.to_be());
    tcp += put_u32_ne(w, W_ACK, leg.ack.to_be());
    let (from, to, rescale) = options.window;
    if rescale {
        let old = u16::from_be(w[W_WINDOW]);
        tcp += put_word(w, W_WINDOW, rescale_window(old, from, to).to_be());
    }
    w[W_TCP_CHECK] = csum_add_delta(u16::from_be(w[W_TCP_CHECK]), tcp).to_be();
    forward(ctx, ifindex, reason)
}

/// 16-bit words from the frame's start to the end of the fixed TCP header (no IP options).
const HEADER_WORDS: usize = (ETH_LEN + IPV4_LEN + TCP_LEN) / 2;
/// Word indexes of the fields [`rewrite`] changes.
const W_IP_CHECK: usize = (ETH_LEN + 10) / 2;
const W_SADDR: usize = (ETH_LEN + 12) / 2;
const W_DADDR: usize = (ETH_LEN + 16) / 2;
const W_SPORT: usize = (ETH_LEN + IPV4_LEN) / 2;
const W_DPORT: usize = W_SPORT + 1;
const W_SEQ: usize = W_SPORT + 2;
const W_ACK: usize = W_SPORT + 4;
const W_WINDOW: usize = W_SPORT + 7;
const W_TCP_CHECK: usize = W_SPORT + 8;

/// Writes the word `new` (as it lies in the packet) at index `at`; returns the checksum change
/// (~old + new, host-order values).
#[inline(always)]
fn put_word(w: &mut [u16; HEADER_WORDS], at: usize, new: u16) -> u32 {
    let old = w[at];
    w[at] = new;
    u32::from(!u16::from_be(old)) + u32::from(u16::from_be(new))
}

/// Writes the 32-bit value `value` (its bytes in packet order, as an address in network order is
/// held) at word index `at`; returns the checksum change.
#[inline(always)]
fn put_u32_ne(w: &mut [u16; HEADER_WORDS], at: usize, value: u32) -> u32 {
    let b = value.to_ne_bytes();
    put_word(w, at, u16::from_ne_bytes([b[0], b[1]]))
        + put_word(w, at + 1, u16::from_ne_bytes([b[2], b[3]]))
}

/// Writes a MAC address at word index `at` (not covered by any checksum).
#[inline(always)]
fn put_mac(w: &mut [u16; HEADER_WORDS], at: usize, mac: [u8; 6]) {
    w[at] = u16::from_ne_bytes([mac[0], mac[1]]);
    w[at + 1] = u16::from_ne_bytes([mac[2], mac[3]]);
    w[at + 2] = u16::from_ne_bytes([mac[4], mac[5]]);
}

/// Translates the segment's options (a TCP header of `tcp_len` bytes); the change of their checksum
/// sum, `None` if they could not be written back. The layout of nearly every established segment
/// (NOP, NOP, timestamps: 12 bytes) is recognised here from the packet alone and translated in place
/// as words, with no look at the option walk in the scratch entry; any other layout takes the walk
/// (`options::translate_xdp`).
#[inline(always)]
fn translate_options(ctx: &XdpContext, tcp_len: u32, t: &Translation) -> Option<u32> {
    if tcp_len == (TCP_LEN + 12) as u32
        && let Some(opts) = ptr_at::<[u16; 6]>(ctx, crate::options::OPTIONS_AT as usize)
    {
        // SAFETY: bounds checked by `ptr_at`; 2-byte aligned (as in `rewrite`).
        let o = unsafe { &mut *opts };
        if o[0] == crate::options::NOP_NOP && o[1] == crate::options::TIMESTAMP_KIND_LEN {
            let mut values = [o[2], o[3], o[4], o[5]];
            let delta = translate_timestamp_words(&mut values, t);
            o[2] = values[0];
            o[3] = values[1];
            o[4] = values[2];
            o[5] = values[3];
            return Some(delta);
        }
    }
    crate::options::translate_xdp(ctx, t)
}

/// Writes a RST (`macs`: ours, theirs; `from`/`to`: address and port in network order) over the packet
/// and sends it out of `ifindex`.
#[inline(always)]
fn send_rst(
    ctx: &XdpContext,
    macs: ([u8; 6], [u8; 6]),
    from: (u32, u16),
    to: (u32, u16),
    seq: u32,
    ifindex: u32,
) -> Verdict {
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) else {
        return Verdict::drop(Reason::SpliceReset);
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let frame = unsafe { &mut (*scratch).rst };
    build_rst_v4(
        macs,
        (from.0.to_ne_bytes(), from.1.to_ne_bytes()),
        (to.0.to_ne_bytes(), to.1.to_ne_bytes()),
        seq,
        frame,
    );
    let delta = RST_V4_LEN as i32 - frame_len(ctx) as i32;
    // SAFETY: plain helper calls on this program's context; no packet pointer is used afterwards.
    let written = unsafe {
        (delta == 0 || bpf_xdp_adjust_tail(ctx.ctx, delta) == 0)
            && bpf_xdp_store_bytes(ctx.ctx, 0, frame.as_mut_ptr().cast(), RST_V4_LEN as u32) == 0
    };
    if !written {
        return Verdict::drop(Reason::SpliceReset);
    }
    forward(ctx, ifindex, Reason::SpliceReset)
}

/// Sends the packet out of `ifindex`: back where it came from (`XDP_TX`) or redirected.
#[inline(always)]
fn forward(ctx: &XdpContext, ifindex: u32, reason: Reason) -> Verdict {
    // SAFETY: reading a field of this program's context.
    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
    if ifindex == ingress {
        return Verdict::tx(reason);
    }
    // SAFETY: plain helper call; it returns the XDP action.
    let action = unsafe { bpf_redirect(ifindex, 0) } as u32;
    if action != xdp_action::XDP_REDIRECT {
        return Verdict::drop(Reason::SpliceRedirectError);
    }
    Verdict { action, reason }
}
