//! Every map of the BPF programs (XDP and TC share them). Names and value layouts come from `rauta_common::maps`; the static's
//! identifier is the map's name in the object, so it must equal the constant there (the loader's tests
//! look each one up by that constant).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray},
};
use rauta_common::{
    handoff::HANDOFF_ACK_V4_HEADERS,
    maps::{
        COUNTER_SLOTS, FLOW_ENTRIES, FlowKey, FlowState, HELD_ENTRIES, HELD_MAX, HeldKey,
        LATENCY_SLOTS, LATENCY_SUM_SLOT, PENDING_BUF, PENDING_ENTRIES, PENDING_SHORT_BUF,
        PendingSegment, PendingShort, STATUS_CLASS_SLOTS, SYNACK_V4_LEN, TCP_MAX_HEADER, VipConfig,
        latency_bucket,
    },
    reason::Reason,
    route::{
        Endpoint, ROUTE_COUNTER_SLOTS, ROUTE_ENTRIES, RouteDecision, RouteKey, RouteReason,
        RouteValue, SERVICE_ENTRIES, SLOT_ENTRIES, ServiceEntry,
    },
    splice::{
        BackendLeg, CLIENT_INDEX_SLOTS, ClientIndex, FIB_CACHE_SLOTS, FibEntry, LEG_READY,
        NAT_SLOTS, NatKey, OLD_LEG_ENTRIES, OldLeg, PROG_SLOTS, REQUEST_SLOTS, RST_V4_LEN,
        SPLICE_CLOSED, SPLICE_ENTRIES, SpliceConfig, SpliceState, SplicedRequest, client_index,
        released_claim, request_index,
    },
    tcpopt::{OPTIONS_BUF, OptionWalk},
};

use crate::xdp::route::{Hit, RouteScratch};

/// `RAUTA_VIP`: the VIP Tier 1 answers for (one entry, written by userspace; all zero = disabled).
#[map]
pub static RAUTA_VIP: Array<VipConfig> = Array::with_max_entries(1, 0);

/// `RAUTA_COUNTERS`: packets per reason code, per CPU (userspace sums the CPUs).
#[map]
pub static RAUTA_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// `RAUTA_SCRATCH`: per-CPU buffers too large for the 512-byte BPF stack. Entry [`SCRATCH_XDP`] belongs to
/// the XDP program, [`SCRATCH_TC`] to the TC program, so that neither can overwrite the other's buffers
/// even if one ran nested in the other on the same CPU.
#[map]
pub static RAUTA_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(3, 0);

/// The XDP program's entry of [`RAUTA_SCRATCH`].
pub const SCRATCH_XDP: u32 = 0;
/// The TC egress program's entry of [`RAUTA_SCRATCH`].
pub const SCRATCH_TC: u32 = 1;
/// The TC ingress program's entry of [`RAUTA_SCRATCH`].
pub const SCRATCH_TC_INGRESS: u32 = 2;

/// `RAUTA_FLOWS`: connections handed to the local listener (state, cookie, seq offset), by 4-tuple.
#[map]
pub static RAUTA_FLOWS: LruHashMap<FlowKey, FlowState> =
    LruHashMap::with_max_entries(FLOW_ENTRIES, 0);

/// `RAUTA_PENDING`: the client's first data segment, from SYN replay until the listener's SYN-ACK.
#[map]
pub static RAUTA_PENDING: LruHashMap<FlowKey, PendingSegment> =
    LruHashMap::with_max_entries(PENDING_ENTRIES, 0);

/// `RAUTA_PENDING_SHORT`: the same for first segments of at most 512 bytes (see
/// `rauta_common::maps::PENDING_SHORT_MAP`; [`store_pending`], [`pending_of`]).
#[map]
pub static RAUTA_PENDING_SHORT: LruHashMap<FlowKey, PendingShort> =
    LruHashMap::with_max_entries(PENDING_ENTRIES, 0);

/// Stores the first segment captured in `segment` (its `len` checked by the capture) under `key`: in
/// `RAUTA_PENDING_SHORT` if it fits, else in `RAUTA_PENDING`. `again`: the connection may have an
/// entry from an earlier replay with the same `seq` (a retransmission, a fallback), which is removed
/// from the other map so that readers cannot take it instead. False if the insert failed.
#[inline(always)]
pub fn store_pending(key: &FlowKey, segment: &PendingSegment, again: bool) -> bool {
    if segment.len as usize <= PENDING_SHORT_BUF {
        if again {
            let _ = RAUTA_PENDING.remove(key);
        }
        // SAFETY: `PendingShort` is the layout of a `PendingSegment`'s first 24 + PENDING_SHORT_BUF
        // bytes (asserted in `rauta_common::maps`); the insert reads exactly that prefix.
        let short = unsafe { &*(segment as *const PendingSegment).cast::<PendingShort>() };
        RAUTA_PENDING_SHORT.insert(key, short, 0).is_ok()
    } else {
        if again {
            let _ = RAUTA_PENDING_SHORT.remove(key);
        }
        // By reference on purpose: passing the 2 KB value by value would copy it onto the stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let stored = RAUTA_PENDING.insert(key, &*segment, 0);
        stored.is_ok()
    }
}

/// A stored first segment, as the TC programs send it: its fields and its payload in place.
pub struct StoredSegment {
    /// As `PendingSegment`.
    pub flags: u32,
    /// As `PendingSegment`.
    pub window: u32,
    /// As `PendingSegment`.
    pub sum: u32,
    /// As `PendingSegment`.
    pub tsval: u32,
    /// The payload's first byte, inside a map value that holds at least `len` bytes from here.
    pub data: *const u8,
    /// The payload length, 1..=the buffer's size, restated so the verifier knows that bound.
    pub len: u32,
    /// True if it is the short map's entry (see [`forget_stored`]).
    pub short: bool,
}

/// The first segment stored for `key` whose sequence number is `seq` (the connection's ISN + 1): the
/// short map's entry if it is that one, else the long map's (see `rauta_common::maps::PENDING_SHORT_MAP`).
#[inline(always)]
pub fn pending_of(key: &FlowKey, seq: u32) -> Option<StoredSegment> {
    if let Some(short) = RAUTA_PENDING_SHORT.get_ptr(key) {
        // SAFETY: a pointer from a successful lookup, valid for this run.
        let short = unsafe { &*short };
        if short.seq == seq && short.len != 0 && short.len as usize <= PENDING_SHORT_BUF {
            return Some(stored_short(short));
        }
    }
    let long = RAUTA_PENDING.get_ptr(key)?;
    // SAFETY: a pointer from a successful lookup, valid for this run.
    let long = unsafe { &*long };
    if long.len == 0 || long.len as usize > PENDING_BUF {
        return None;
    }
    let len = ((core::hint::black_box(long.len).wrapping_sub(1)) & (PENDING_BUF as u32 - 1)) + 1;
    Some(StoredSegment {
        flags: long.flags,
        window: long.window,
        sum: long.sum,
        tsval: long.tsval,
        data: long.data.as_ptr(),
        len,
        short: false,
    })
}

/// `RAUTA_REQUESTS`: a splice's first request, in the slot of its NAT port (see
/// `rauta_common::splice::REQUESTS_MAP`).
#[map]
pub static RAUTA_REQUESTS: Array<SplicedRequest> = Array::with_max_entries(REQUEST_SLOTS, 0);

/// 32-bit words of a stored request's fields and payload (`PendingShort`, the prefix of a
/// `PendingSegment` that holds up to `PENDING_SHORT_BUF` bytes).
const SHORT_WORDS: usize = core::mem::size_of::<PendingShort>() / 4;
/// Words of `PendingShort` before its payload.
const HEADER_WORDS: u32 = 6;

/// Copies the captured first request `segment` into the `RAUTA_REQUESTS` slot of the NAT port `port_be`
/// (network order) that the splice claimed with `claim`, if the request fits the slot's class and no
/// other port's splice may still need the slot (`SplicedRequest::other_holder`: only with a range wider
/// than the map). True if stored there; false: the caller stores it in the pending maps. No other CPU
/// writes the slot meanwhile: a port sharing it is checked to be released or claimed again.
#[inline(always)]
pub fn store_request(port_be: u16, claim: u64, segment: &PendingSegment) -> bool {
    let port = u16::from_be(port_be);
    let len = segment.len;
    if len == 0 || len as usize > PENDING_SHORT_BUF {
        return false;
    }
    let Some(slot) = RAUTA_REQUESTS.get_ptr_mut(request_index(port)) else {
        return false;
    };
    // SAFETY: a map value pointer, valid as long as the map; two fields read in place.
    if let Some(other) = unsafe { (*slot).other_holder(port) }
        && let Some(other_slot) = nat_slot(other.to_be())
        // SAFETY: as above.
        && claim_of(other_slot) == unsafe { (*slot).claim }
    {
        return false;
    }
    // Only the words that hold something: the fields and the payload with its zero padding (a 70-byte
    // GET copies 24 words, not 134). Word copies: both sides are 4-byte aligned `repr(C)` values.
    let words = HEADER_WORDS + len.div_ceil(4);
    // SAFETY: `slot` is a map value (valid as long as the map) holding a `PendingShort` of SHORT_WORDS
    // words; `segment` is at least that long (`PendingShort` is its prefix, asserted in
    // `rauta_common::maps`); both are 4-byte aligned; `i < SHORT_WORDS` bounds every access.
    unsafe {
        (*slot).claim = claim;
        (*slot).nat_port = u32::from(port);
        let dst = core::ptr::addr_of_mut!((*slot).segment).cast::<u32>();
        let src = (segment as *const PendingSegment).cast::<u32>();
        let mut i = 0;
        while i < SHORT_WORDS {
            if i as u32 >= words {
                break;
            }
            *dst.add(i) = *src.add(i);
            i += 1;
        }
    }
    true
}

/// The first request of the splice `s` (of the client connection `key`): its `RAUTA_REQUESTS` slot if
/// it was stored there and the slot still is this splice's (same claim, port and sequence number: a
/// port claimed again since never serves an earlier request), else the pending maps' entry.
#[inline(always)]
pub fn request_of(key: &FlowKey, s: &SpliceState) -> Option<StoredSegment> {
    if s.request_in_slot == 0 {
        return pending_of(key, s.first_seq());
    }
    let port = u16::from_be(s.nat_port);
    let slot = RAUTA_REQUESTS.get_ptr(request_index(port))?;
    // SAFETY: a map value pointer, valid as long as the map; read in place.
    let stored = unsafe { &*slot };
    let short = &stored.segment;
    if stored.claim != s.nat_claim
        || stored.nat_port != u32::from(port)
        || short.seq != s.first_seq()
        || short.len == 0
        || short.len as usize > PENDING_SHORT_BUF
    {
        return None;
    }
    Some(stored_short(short))
}

/// A short entry's segment; the caller has checked `1 <= short.len <= PENDING_SHORT_BUF`.
#[inline(always)]
fn stored_short(short: &PendingShort) -> StoredSegment {
    // Restate 1..=PENDING_SHORT_BUF for the verifier (black_box keeps LLVM from folding the mask into
    // the caller's check).
    let len =
        ((core::hint::black_box(short.len).wrapping_sub(1)) & (PENDING_SHORT_BUF as u32 - 1)) + 1;
    StoredSegment {
        flags: short.flags,
        window: short.window,
        sum: short.sum,
        tsval: short.tsval,
        data: short.data.as_ptr(),
        len,
        short: true,
    }
}

/// Deletes the stored first request of the splice `s` of `key` once nothing will send it again: the
/// pending maps' entry; a `RAUTA_REQUESTS` slot needs nothing (it is dead with the splice's claim).
#[inline(always)]
pub fn forget_request(key: &FlowKey, s_request_in_slot: u16, request_len: u32) {
    if s_request_in_slot == 0 {
        forget_pending_of_len(key, request_len);
    }
}

/// Deletes the stored first segment of `key` from the map [`pending_of`] found it in.
#[inline(always)]
pub fn forget_stored(key: &FlowKey, stored: &StoredSegment) {
    if stored.short {
        let _ = RAUTA_PENDING_SHORT.remove(key);
    } else {
        let _ = RAUTA_PENDING.remove(key);
    }
}

/// Deletes the stored first segment of `key` of `len` bytes (a splice's request: its class is known).
#[inline(always)]
pub fn forget_pending_of_len(key: &FlowKey, len: u32) {
    if len as usize <= PENDING_SHORT_BUF {
        let _ = RAUTA_PENDING_SHORT.remove(key);
    } else {
        let _ = RAUTA_PENDING.remove(key);
    }
}

/// Deletes any stored first segment of `key`, from both maps.
#[inline(always)]
pub fn forget_pending(key: &FlowKey) {
    let _ = RAUTA_PENDING_SHORT.remove(key);
    let _ = RAUTA_PENDING.remove(key);
}

/// `RAUTA_HELD`: later segments of a first request, held until the listener's socket exists.
#[map]
pub static RAUTA_HELD: LruHashMap<HeldKey, PendingSegment> =
    LruHashMap::with_max_entries(HELD_ENTRIES, 0);

/// `RAUTA_ROUTES`: (lowercased host, Exact path) → service id and methods, written from the route table.
#[map]
pub static RAUTA_ROUTES: HashMap<RouteKey, RouteValue> =
    HashMap::with_max_entries(ROUTE_ENTRIES, 0);

/// `RAUTA_SERVICES`: service id → its Maglev table's size and endpoint count (two banks of ids).
#[map]
pub static RAUTA_SERVICES: HashMap<u32, ServiceEntry> =
    HashMap::with_max_entries(SERVICE_ENTRIES, 0);

/// `RAUTA_SLOTS`: slot base of the route's service + Maglev slot → IPv4 endpoint (an array: the lookup
/// is inlined, see `rauta_common::route::SLOTS_MAP`).
#[map]
pub static RAUTA_SLOTS: Array<Endpoint> = Array::with_max_entries(SLOT_ENTRIES, 0);

/// `RAUTA_ROUTE_COUNTERS`: routing decisions per reason, per CPU.
#[map]
pub static RAUTA_ROUTE_COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(ROUTE_COUNTER_SLOTS, 0);

/// `RAUTA_DECISIONS`: the routing decision for each flow's first data segment (the splice starts here).
#[map]
pub static RAUTA_DECISIONS: LruHashMap<FlowKey, RouteDecision> =
    LruHashMap::with_max_entries(FLOW_ENTRIES, 0);

/// `RAUTA_SPLICES`: client connections spliced to a backend (Tier 1), by the client's 4-tuple.
#[map]
pub static RAUTA_SPLICES: LruHashMap<FlowKey, SpliceState> =
    LruHashMap::with_max_entries(SPLICE_ENTRIES, 0);

/// `RAUTA_NAT`: one slot per NAT port (index: the port in host order) → the backend leg holding it,
/// the client connection and what its backend segments need (`BackendLeg`; see
/// `rauta_common::splice::NAT_MAP` for claims, release and staleness).
#[map]
pub static RAUTA_NAT: Array<BackendLeg> = Array::with_max_entries(NAT_SLOTS, 0);

/// `RAUTA_FIB_CACHE`: the last `bpf_fib_lookup` result per backend (see
/// `rauta_common::splice::FIB_CACHE_MAP`).
#[map]
pub static RAUTA_FIB_CACHE: Array<FibEntry> = Array::with_max_entries(FIB_CACHE_SLOTS, 0);

/// `RAUTA_NAT_CURSOR`: per CPU, where its next NAT port claim starts (see
/// `rauta_common::splice::NAT_CURSOR_MAP`).
#[map]
pub static RAUTA_NAT_CURSOR: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The slot of the NAT port `port_be` (network order, as in packets and `SpliceState::nat_port`).
#[inline(always)]
pub fn nat_slot(port_be: u16) -> Option<*mut BackendLeg> {
    RAUTA_NAT.get_ptr_mut(u32::from(u16::from_be(port_be)))
}

/// The claim word of `slot`, read once (a volatile 64-bit load: one instruction, so never torn; the
/// BPF backend selects no atomic load at this CPU version).
#[inline(always)]
pub fn claim_of(slot: *mut BackendLeg) -> u64 {
    // SAFETY: a slot pointer from a successful lookup (array values live as long as the map); the word
    // is 8-byte aligned and only ever changed whole.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*slot).claim)) }
}

/// Changes the claim word of `slot` from `current` to `new` if it still is `current`: one BPF_ATOMIC
/// cmpxchg, so two CPUs claiming (or releasing) the same slot cannot both succeed. The BPF target
/// declares no compare-and-swap to Rust (`atomic-cas: false`, so `AtomicU64` has no
/// `compare_exchange`), but LLVM's BPF backend emits the 64-bit cmpxchg for every CPU version and the
/// kernel has verified it since 5.12: the intrinsic reaches it.
#[inline(always)]
pub fn swap_claim(slot: *mut BackendLeg, current: u64, new: u64) -> bool {
    // SAFETY: as in `claim_of`; the word is only ever changed whole.
    let (_, swapped) = unsafe {
        core::intrinsics::atomic_cxchg::<
            u64,
            { core::intrinsics::AtomicOrdering::SeqCst },
            { core::intrinsics::AtomicOrdering::Relaxed },
        >(core::ptr::addr_of_mut!((*slot).claim), current, new)
    };
    swapped
}

/// The backend leg of the splice `s`: its slot, while the slot still holds the splice's claim.
#[inline(always)]
pub fn leg_of(s: &SpliceState) -> Option<*mut BackendLeg> {
    let slot = nat_slot(s.nat_port)?;
    (claim_of(slot) == s.nat_claim).then_some(slot)
}

/// The backend leg a segment carrying `nat` (as it arrived: backend → node's NAT port) belongs to: the
/// slot of its NAT port if that slot is held by a leg to the same backend from the same node address.
/// A segment of anyone else to a held port (another backend, a port the leg does not use) is not
/// translated.
#[inline(always)]
pub fn leg_for(nat: &NatKey) -> Option<*mut BackendLeg> {
    let slot = nat_slot(nat.nat_port)?;
    // SAFETY: a slot pointer from a successful lookup; read in place.
    unsafe { (*slot).carries(nat) }.then_some(slot)
}

/// `RAUTA_CLIENT_INDEX`: client connection → its splice's NAT port and claim, direct-mapped (see
/// `rauta_common::splice::CLIENT_INDEX_MAP`).
#[map]
pub static RAUTA_CLIENT_INDEX: Array<ClientIndex> = Array::with_max_entries(CLIENT_INDEX_SLOTS, 0);

/// The backend leg that translates the client connection `key`'s pure ACKs on its own: the leg its
/// [`RAUTA_CLIENT_INDEX`] slot names, if the slot is `key`'s, the leg's slot still holds the claim
/// the index recorded, names `key` as its client and is client-ready. `None`: look up the splice.
#[inline(always)]
pub fn client_leg(key: &FlowKey) -> Option<*mut BackendLeg> {
    let entry = RAUTA_CLIENT_INDEX.get_ptr(client_index(key))?;
    // SAFETY: a map value pointer, valid as long as the map; fields read in place (a torn slot, two
    // CPUs writing it at once, is caught by the leg's own checks below).
    let (claim, flow, port) = unsafe { ((*entry).claim, (*entry).flow, (*entry).port) };
    if flow != *key {
        return None;
    }
    let slot = RAUTA_NAT.get_ptr_mut(u32::from(port))?;
    // SAFETY: a slot pointer from a successful lookup; read in place.
    let ok = claim_of(slot) == claim
        && unsafe { (*slot).client_ready == LEG_READY && (*slot).flow == *key };
    ok.then_some(slot)
}

/// Records in [`RAUTA_CLIENT_INDEX`] that the client connection `key` is spliced on the NAT port
/// `port_be` held with `claim`, unless its slot names another splice whose leg still translates its
/// client's segments (that one keeps the slot; `key`'s segments then look up the splice).
#[inline(always)]
pub fn index_client(key: &FlowKey, port_be: u16, claim: u64) {
    let Some(entry) = RAUTA_CLIENT_INDEX.get_ptr_mut(client_index(key)) else {
        return;
    };
    let port = u16::from_be(port_be);
    // SAFETY: a map value pointer, valid as long as the map; read in place.
    let (other_claim, other_flow, other_port) =
        unsafe { ((*entry).claim, (*entry).flow, (*entry).port) };
    if other_flow != *key
        && other_port != port
        && let Some(other) = RAUTA_NAT.get_ptr_mut(u32::from(other_port))
        && claim_of(other) == other_claim
        // SAFETY: as above.
        && unsafe { (*other).client_ready == LEG_READY }
    {
        return;
    }
    // SAFETY: as above. Not atomic: a reader of a half-written slot fails the leg's checks.
    unsafe {
        (*entry).claim = claim;
        (*entry).flow = *key;
        (*entry).port = port;
    }
}

/// Frees the NAT slot of `port_be` if it is still held with `claim` (by the splice releasing it).
/// `quarantine`: the leg did not close cleanly, so the port stays out of reach of the same backend for
/// a while (see `rauta_common::splice::NAT_QUARANTINE_NS`).
#[inline(always)]
pub fn release_nat(port_be: u16, claim: u64, quarantine: bool) {
    if let Some(slot) = nat_slot(port_be) {
        // Stamped with the release time (the quarantine's start).
        // SAFETY: plain helper call.
        let now = unsafe { aya_ebpf::helpers::generated::bpf_ktime_get_ns() };
        let _ = swap_claim(slot, claim, released_claim(claim, now, quarantine));
    }
}

/// `RAUTA_OLD_LEGS`: backend legs of moved connections, closed by the TC program that completes the move
/// (see `rauta_common::splice::OLD_LEGS_MAP`).
#[map]
pub static RAUTA_OLD_LEGS: LruHashMap<FlowKey, OldLeg> =
    LruHashMap::with_max_entries(OLD_LEG_ENTRIES, 0);

/// `RAUTA_SPLICE_CONFIG`: whether hits are spliced, and the NAT port range (written by userspace).
#[map]
pub static RAUTA_SPLICE_CONFIG: Array<SpliceConfig> = Array::with_max_entries(1, 0);

/// `RAUTA_PROGS`: the splice's chain of tail calls (`PROG_SPLICE`: header check, `PROG_SPLICE_START`:
/// the SYN to the backend). A tail call gives each step a verifier budget of its own (inlined after the
/// request parser, or the header scan after the splice's branches, the paths multiplied past the
/// verifier's limit).
#[map]
pub static RAUTA_PROGS: ProgramArray = ProgramArray::with_max_entries(PROG_SLOTS, 0);

/// Scratch space for one packet on one CPU. Valid only within one program run.
#[repr(C)]
pub struct Scratch {
    /// A copy of the TCP header (the cookie helpers want a pointer to a header whose length the verifier
    /// can bound; a copy of at most 60 bytes gives it that).
    pub tcp: [u8; TCP_MAX_HEADER],
    /// The SYN-ACK (or replayed SYN) being built.
    pub frame: [u8; SYNACK_V4_LEN],
    /// Explicit padding to a multiple of 8.
    pub _pad: [u8; 2],
    /// The first data segment being stored (copied into `RAUTA_PENDING` from here: 2 KB do not fit the
    /// stack).
    pub segment: PendingSegment,
    /// The headers of the hand-off ACK being built (TC).
    pub ack: [u8; HANDOFF_ACK_V4_HEADERS],
    /// Explicit padding to a multiple of 8.
    pub _pad2: [u8; 2],
    /// The request parser's state and the route key it builds (XDP).
    pub route: RouteScratch,
    /// A routing hit, for the splice program (XDP, tail call).
    pub hit: Hit,
    /// The hand-off reason of the packet the hit was decided on (counted if the splice falls back).
    pub handoff_reason: u32,
    /// `bpf_ktime_get_ns` when the current packet was recognised as a first data segment (0: none).
    pub first_started_ns: u64,
    /// A RST being built (XDP).
    pub rst: [u8; RST_V4_LEN],
    /// Explicit padding to a multiple of 8.
    pub _pad3: [u8; 2],
    /// The TCP options of the packet at hand (loaded, walked, translated, stored back).
    pub opts: [u8; OPTIONS_BUF],
    /// Where they are: the one walk of the packet's options (XDP: `options::prepare_xdp`).
    pub walk: OptionWalk,
    /// The checksum change of their translation (see `options::translate_xdp`).
    pub delta: u32,
    /// A splice being started (XDP).
    pub splice: SpliceState,
    /// The flow entry of the first data segment being decided (XDP): written to `RAUTA_FLOWS` only if
    /// the connection goes to Tier 3 (`handoff::commit_flow`), read by the splice if it is a hit.
    pub flow_state: FlowState,
    /// What a tail-called step hands back to the entry program (XDP; see `xdp::Resume`).
    pub resume: crate::xdp::Resume,
    /// The response head scanner's state (XDP; see `xdp::response`).
    pub response: crate::xdp::response::ResponseScratch,
    /// The leg a follow-up moves away from, on its way into `RAUTA_OLD_LEGS` (XDP; built here, not on
    /// the stack, which the follow-up program's verification cannot afford).
    pub old_leg: OldLeg,
}

/// Deletes everything Tier 1 keeps for the flow `key`: its entry, its stored first segment and any held
/// segments.
#[inline(always)]
pub fn forget(key: &FlowKey) {
    let _ = RAUTA_FLOWS.remove(key);
    forget_pending(key);
    let _ = RAUTA_DECISIONS.remove(key);
    forget_splice(key);
    let mut index = 0;
    while index < HELD_MAX {
        let _ = RAUTA_HELD.remove(HeldKey { flow: *key, index });
        index += 1;
    }
}

/// A copy of the value under `key`, read at once (the entry may be updated or deleted by another CPU
/// right after; a copy never dangles).
#[inline(always)]
pub fn copy_of<K, V: Copy>(map: &LruHashMap<K, V>, key: &K) -> Option<V> {
    let value = map.get_ptr(key)?;
    // SAFETY: a pointer from a successful lookup, valid for this run (RCU); read once.
    Some(unsafe { *value })
}

/// Deletes the splice of the flow `key` and releases its NAT port: once, by whichever caller's delete
/// of the splice succeeds (a client and a backend RST on two CPUs both end up here).
#[inline(always)]
pub fn forget_splice(key: &FlowKey) {
    if let Some(splice) = RAUTA_SPLICES.get_ptr(key) {
        // SAFETY: a pointer from a successful lookup, read at once.
        let (port, claim, request_len, fins, in_slot) = unsafe {
            (
                (*splice).nat_port,
                (*splice).nat_claim,
                (*splice).request_len,
                (*splice).fins,
                (*splice).request_in_slot,
            )
        };
        if RAUTA_SPLICES.remove(key).is_ok() {
            // Anything but both FINs acknowledged may leave the backend's end open (our RST is best
            // effort): the port is quarantined for this backend.
            release_nat(port, claim, fins != SPLICE_CLOSED);
        }
        // The stored request, if the splice ends before the backend acknowledged it.
        forget_request(key, in_slot, request_len);
    }
}

/// `RAUTA_LATENCY`: the first-request run-time histogram (see `rauta_common::maps::LATENCY_MAP`).
#[map]
pub static RAUTA_LATENCY: PerCpuArray<u64> = PerCpuArray::with_max_entries(LATENCY_SLOTS, 0);

/// `RAUTA_STATUS_CLASSES`: Tier 1 responses by status class, per CPU (see
/// `rauta_common::maps::STATUS_CLASSES_MAP`).
#[map]
pub static RAUTA_STATUS_CLASSES: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(STATUS_CLASS_SLOTS, 0);

/// Adds one to the response status class `slot` on this CPU.
#[inline(always)]
pub fn count_status(slot: u32) {
    if let Some(value) = RAUTA_STATUS_CLASSES.get_ptr_mut(slot) {
        // SAFETY: this CPU's own slot, from a successful lookup.
        unsafe { *value += 1 };
    }
}

/// Marks the start of a first data segment's processing (this CPU's scratch entry).
#[inline(always)]
pub fn first_request_started(scratch: &mut Scratch) {
    // SAFETY: plain helper call.
    scratch.first_started_ns = unsafe { aya_ebpf::helpers::generated::bpf_ktime_get_ns() };
}

/// Records the run time since [`first_request_started`] in the histogram, once.
#[inline(always)]
pub fn first_request_done() {
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) else {
        return;
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    let started = scratch.first_started_ns;
    if started == 0 {
        return;
    }
    scratch.first_started_ns = 0;
    // SAFETY: plain helper call.
    let ns = unsafe { aya_ebpf::helpers::generated::bpf_ktime_get_ns() }.saturating_sub(started);
    for (slot, add) in [(latency_bucket(ns), 1), (LATENCY_SUM_SLOT, ns)] {
        if let Some(value) = RAUTA_LATENCY.get_ptr_mut(slot) {
            // SAFETY: this CPU's own slot, from a successful lookup.
            unsafe { *value += add };
        }
    }
}

/// Adds one to the counter of `reason` on this CPU. Per-CPU values need no atomic operation.
#[inline(always)]
pub fn count(reason: Reason) {
    if let Some(slot) = RAUTA_COUNTERS.get_ptr_mut(reason.index()) {
        // SAFETY: the pointer comes from a successful map lookup and is this CPU's own slot.
        unsafe { *slot += 1 };
    }
}

/// Adds one to the routing-decision counter of `reason` on this CPU.
#[inline(always)]
pub fn count_route(reason: RouteReason) {
    if let Some(slot) = RAUTA_ROUTE_COUNTERS.get_ptr_mut(reason.index()) {
        // SAFETY: the pointer comes from a successful map lookup and is this CPU's own slot.
        unsafe { *slot += 1 };
    }
}
