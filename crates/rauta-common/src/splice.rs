//! The splice of a client connection to a backend (Tier 1): map layouts and the sequence arithmetic.
//!
//! On a routing hit the XDP program turns the client's first data segment into a SYN from the node (an
//! allocated source-NAT port on the address the route to the backend leaves from) to the backend. Our
//! ISN on that leg is a clock, not the client's ISN: a backend that still holds the previous use of the
//! same 4-tuple in TIME_WAIT accepts a new SYN only if its sequence number is after the old connection's
//! (the kernel's own ISNs advance with time for the same reason). The backend's SYN-ACK becomes the ACK
//! carrying the stored request, unchanged. From then on every packet is translated by two offsets:
//!
//! ```text
//! client → backend: seq + (leg_isn − client_isn)      ack + (backend_isn − cookie)
//! backend → client: seq − (backend_isn − cookie)      ack − (leg_isn − client_isn)
//! ```
//!
//! The connection stays alive: each follow-up request is routed by its own head (see
//! [`SpliceState::next_request`]); the backend's responses are framed as they pass
//! ([`BackendLeg::response_next`]) so that a switch to another backend happens only between responses.
//! A switch starts over as if the follow-up were a first segment whose ISNs are `seq − 1` and `ack − 1`:
//! `client_isn` and `cookie` are where the client's and "the server's" current byte streams began for
//! the leg at hand, not the connection's real ISNs.
//!
//! Pure functions, so the BPF programs and host tests run the same code.
#![forbid(unsafe_code)]

use crate::checksum::fold;
use crate::maps::FlowKey;

/// Name of the splice map (`BPF_MAP_TYPE_LRU_HASH`, [`FlowKey`] → [`SpliceState`], [`SPLICE_ENTRIES`]):
/// client connections spliced to a backend, keyed like the hand-off flows.
pub const SPLICES_MAP: &str = "RAUTA_SPLICES";
/// Name of the source-NAT map (`BPF_MAP_TYPE_ARRAY`, [`NAT_SLOTS`] × [`BackendLeg`], indexed by the NAT
/// port in host order): the backend leg that holds the port → the client connection and everything a
/// backend segment needs in the common case (one index per backend segment, no hashing).
///
/// A NAT port is unique per node (not per backend, as a hash keyed by the leg's 4-tuple allowed): at
/// most as many splices as the configured port range holds run at once, and a hit that finds no free
/// port among [`NAT_PROBES`] candidates falls back to Tier 3 (`SpliceNatExhausted`). A slot is claimed
/// and released by a compare-and-swap on [`BackendLeg::claim`] (see [`next_claim`]); a backend segment
/// is the slot's only if the slot is held and its [`BackendLeg::nat`] names the segment's addresses and
/// ports. A held slot whose splice is gone (`RAUTA_SPLICES` is an LRU and may evict it) is reclaimed by
/// the next allocation that probes it, or released by the next backend segment to it, once the claim
/// is older than [`LEG_STALE_NS`] (see [`claim_is_stale`]): state is bounded by the array, and ages out
/// with the splice table. A slot released without a clean close is not claimed again for the same
/// backend within [`NAT_QUARANTINE_NS`] (see [`released_claim`]).
pub const NAT_MAP: &str = "RAUTA_NAT";
/// Name of the NAT cursor map (`BPF_MAP_TYPE_PERCPU_ARRAY`, one `u32`): per CPU, the offset in the
/// port range after the last port it claimed. An allocation tries that port first, then
/// [`NAT_PROBES`]` − 1` hashed candidates: consecutive claims of a CPU touch neighbouring slots (warm
/// pages and cache lines; random slots of the 6 MB array were cold on every first request), a port is
/// reused only after the cursor went round the range (good for a backend's TIME_WAIT), and two CPUs that
/// meet move apart at the first hashed probe.
pub const NAT_CURSOR_MAP: &str = "RAUTA_NAT_CURSOR";
/// Slots of [`NAT_MAP`]: one per port number.
pub const NAT_SLOTS: u32 = 65536;
/// Name of the spliced-request map (`BPF_MAP_TYPE_ARRAY`, [`REQUEST_SLOTS`] × [`SplicedRequest`], index
/// [`request_index`] of the NAT port): the first request of a splice, from our SYN to the backend until
/// the backend acknowledges it (TC ingress sends it with our ACK, and again if the client retransmits
/// it). Why not `RAUTA_PENDING_SHORT`: its LRU insert (hash, bucket lock, free-node pop, a cold node) was
/// the largest single cost of a first GET; this slot is the splice's from its NAT port claim, so storing
/// is a plain copy. Requests of at most [`crate::maps::PENDING_SHORT_BUF`] bytes go here; longer ones,
/// and those whose slot another port's live splice still holds (ranges wider than [`REQUEST_SLOTS`]
/// ports share slots), keep the pending maps ([`SpliceState::request_in_slot`] says which). A slot is
/// read only while its [`SplicedRequest::claim`] and port equal the splice's: a port released and
/// claimed again never serves the earlier request.
pub const REQUESTS_MAP: &str = "RAUTA_REQUESTS";
/// Slots of [`REQUESTS_MAP`]: any 8,192 consecutive ports (the default range has 4,536) have one each;
/// 8,192 × 552 bytes ≈ 4.5 MB preallocated.
pub const REQUEST_SLOTS: u32 = 8192;
/// Name of the client index (`BPF_MAP_TYPE_ARRAY`, [`CLIENT_INDEX_SLOTS`] × [`ClientIndex`], index
/// [`client_index`] of the client's [`FlowKey`]): where an established splice's client segments find
/// its backend leg without the [`SPLICES_MAP`] hash lookup (its jhash of the 4-tuple, bucket walk and
/// cold 144-byte value were about half of a client ACK's cost). Direct-mapped and tagged: a slot names
/// one client connection, its NAT port and the claim it holds that port with. A client's pure ACK (no
/// data, SYN, FIN or RST) whose slot names its 4-tuple, whose port's [`NAT_MAP`] slot still holds
/// that claim, names the same client and is [`BackendLeg::client_ready`], is translated from the leg
/// alone, exactly as the splice would translate it (an established splice that neither side closed
/// changes no state on a pure ACK). Anything else, and every miss, looks up the splice as before.
///
/// The slot is a hint, never trusted on its own: the claim ties it to one tenure of the port (a port
/// released and claimed again by another connection has another claim, and the leg names another
/// client), so a stale or torn slot (two CPUs writing it at once) only costs the hash lookup. Written
/// by the backend segment that establishes the splice, unless the slot names another live splice (that
/// one keeps it; this one's client segments take the hash: the overflow is [`SPLICES_MAP`] itself). No
/// release and no ageing of its own: a splice's close, reset, move or eviction takeover changes (or
/// un-readies) its NAT claim, which kills the slot, and a dead slot is free for the next writer.
pub const CLIENT_INDEX_MAP: &str = "RAUTA_CLIENT_INDEX";
/// Slots of [`CLIENT_INDEX_MAP`]: as many as the NAT ports, so that with every port in use about
/// 1 − 1/e of the splices have a slot to themselves; 65,536 × 24 bytes = 1.5 MB preallocated.
pub const CLIENT_INDEX_SLOTS: u32 = 65536;

/// Value of [`CLIENT_INDEX_MAP`]: the splice of one client connection, as its NAT port and claim.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientIndex {
    /// The [`BackendLeg::claim`] the splice holds its port with (0: never written).
    pub claim: u64,
    /// The client connection (the tag: a slot is shared by every 4-tuple that hashes to it).
    pub flow: FlowKey,
    /// The NAT port (host order).
    pub port: u16,
    /// Explicit padding; always zero.
    pub _pad: u16,
}

/// The [`CLIENT_INDEX_MAP`] slot of the client connection `key`.
#[inline(always)]
pub const fn client_index(key: &FlowKey) -> u32 {
    let ports = (key.client_port as u32) << 16 | key.vip_port as u32;
    // The VIP turned so that a client address equal to it does not cancel out in the xor.
    crate::flow::fmix32(key.client_addr ^ key.vip_addr.rotate_left(16) ^ crate::flow::fmix32(ports))
        & (CLIENT_INDEX_SLOTS - 1)
}

/// Name of the backend route cache (`BPF_MAP_TYPE_ARRAY`, [`FIB_CACHE_SLOTS`] × [`FibEntry`], index
/// [`fib_cache_index`] of the backend's address): what `bpf_fib_lookup` said about a backend (egress
/// interface, our source address, both MACs), reused by the next first GETs to it for
/// [`FIB_CACHE_NS`]. Why: the helper was ~230 ns of a first GET (session 7's profile), and a backend's
/// route and neighbour rarely change. The price: a changed neighbour (a backend's MAC, a route) is seen
/// by new splices up to [`FIB_CACHE_NS`] late. Two backends whose addresses share a slot take turns
/// (each lookup overwrites it); a slot is used only for the backend address and ingress interface it
/// names.
pub const FIB_CACHE_MAP: &str = "RAUTA_FIB_CACHE";
/// Slots of [`FIB_CACHE_MAP`].
pub const FIB_CACHE_SLOTS: u32 = 4096;
/// How long a [`FibEntry`] is used before the helper is asked again.
pub const FIB_CACHE_NS: u64 = 1_000_000_000;

/// Value of [`FIB_CACHE_MAP`]: one `bpf_fib_lookup` result for a backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FibEntry {
    /// When the helper said so (`bpf_ktime_get_ns`); 0: never.
    pub checked_ns: u64,
    /// The backend's IPv4 address (network order).
    pub backend_addr: u32,
    /// The interface the client's packet came in on (the lookup's input).
    pub ingress: u32,
    /// The interface towards the backend.
    pub ifindex: u32,
    /// Our source address towards the backend (network order).
    pub node_addr: u32,
    /// Our MAC on `ifindex`.
    pub node_mac: [u8; 6],
    /// The backend's (or its next hop's) MAC.
    pub backend_mac: [u8; 6],
    /// Explicit padding; always zero.
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<FibEntry>() == 40);
const _: () = assert!(FIB_CACHE_SLOTS.is_power_of_two());

impl FibEntry {
    /// Whether this entry answers a lookup for `backend_addr` from `ingress` at `now`.
    #[inline(always)]
    pub const fn fresh_for(&self, backend_addr: u32, ingress: u32, now: u64) -> bool {
        self.checked_ns != 0
            && self.backend_addr == backend_addr
            && self.ingress == ingress
            && now.wrapping_sub(self.checked_ns) < FIB_CACHE_NS
    }
}

/// The [`FIB_CACHE_MAP`] slot of a backend address (network order).
#[inline(always)]
pub const fn fib_cache_index(backend_addr: u32) -> u32 {
    crate::flow::fmix32(backend_addr) & (FIB_CACHE_SLOTS - 1)
}

/// Age after which a held NAT slot whose splice no longer names it may be taken over: far longer than
/// one program run (the only time a fresh claim has no splice yet), short enough that an evicted
/// splice's port comes back within a second.
pub const LEG_STALE_NS: u64 = 1_000_000_000;
/// Name of the splice configuration map (`BPF_MAP_TYPE_ARRAY`, one [`SpliceConfig`]).
pub const SPLICE_CONFIG_MAP: &str = "RAUTA_SPLICE_CONFIG";
/// Name of the program array (`BPF_MAP_TYPE_PROG_ARRAY`) the XDP program tail-calls.
pub const PROGS_MAP: &str = "RAUTA_PROGS";
/// Slot of [`XDP_SPLICE_PROGRAM`] in [`PROGS_MAP`].
pub const PROG_SPLICE: u32 = 0;
/// Slot of [`XDP_SPLICE_START_PROGRAM`] in [`PROGS_MAP`].
pub const PROG_SPLICE_START: u32 = 1;
/// Name of the XDP program tail-called on a routing hit: checks the request's headers, then tail-calls
/// [`XDP_SPLICE_START_PROGRAM`]. Each program of the chain gets a verifier budget of its own.
pub const XDP_SPLICE_PROGRAM: &str = "rauta_xdp_splice";
/// Name of the XDP program that starts a splice (SYN to the backend).
pub const XDP_SPLICE_START_PROGRAM: &str = "rauta_xdp_splice_start";
/// Slot of [`XDP_ROUTE_PROGRAM`] in [`PROGS_MAP`].
pub const PROG_ROUTE: u32 = 2;
/// Name of the XDP program tail-called on every first data segment (after the hand-off stored it): the
/// routing decision (request parser, route and Maglev lookups), then on a hit [`XDP_SPLICE_PROGRAM`].
/// Out of the entry program so that the parser's verifier budget is its own: the entry program, which
/// every packet runs, keeps room for the per-packet work (TCP options, translation).
pub const XDP_ROUTE_PROGRAM: &str = "rauta_xdp_route";
/// Slot of [`XDP_SYN_PROGRAM`] in [`PROGS_MAP`].
pub const PROG_SYN: u32 = 3;
/// Name of the XDP program tail-called on a SYN to the VIP: the SYN-cookie SYN-ACK with the options
/// agreed (`crate::tcpopt`). Out of the entry program because building the SYN-ACK needs more stack
/// than the entry program has left.
pub const XDP_SYN_PROGRAM: &str = "rauta_xdp_syn";
/// Slot of [`XDP_FOLLOWUP_PROGRAM`] in [`PROGS_MAP`].
pub const PROG_FOLLOWUP: u32 = 4;
/// Name of the XDP program tail-called on a follow-up request of a kept-alive splice (the segment
/// captured in the scratch entry): the routing decision, compared with the splice's backend. It
/// records the outcome in the scratch entry and tail-calls [`PROG_ENTRY`] again, which acts on it.
pub const XDP_FOLLOWUP_PROGRAM: &str = "rauta_xdp_followup";
/// Slot of [`XDP_RESPONSE_PROGRAM`] in [`PROGS_MAP`].
pub const PROG_RESPONSE: u32 = 5;
/// Name of the XDP program tail-called on a backend segment where a response head starts: reads the
/// status and `Content-Length` into the splice state, then tail-calls [`PROG_ENTRY`] again.
pub const XDP_RESPONSE_PROGRAM: &str = "rauta_xdp_response";
/// Slot of the entry program itself (`rauta_xdp`) in [`PROGS_MAP`]: the follow-up and response programs
/// return to it, so that the translation of the segment they looked at stays in one place.
pub const PROG_ENTRY: u32 = 6;
/// Slots in [`PROGS_MAP`].
pub const PROG_SLOTS: u32 = 7;
/// Name of the TC ingress program that turns a backend's SYN-ACK into the ACK carrying the request.
pub const TC_INGRESS_PROGRAM: &str = "rauta_tc_ingress";

/// Capacity of [`SPLICES_MAP`]. LRU: an evicted splice loses its translation (its packets then find no
/// state and are dropped, as for any unknown connection; its NAT slot is reclaimed, see [`NAT_MAP`]).
pub const SPLICE_ENTRIES: u32 = 65536;

/// Ports the source NAT allocates from by default: above Linux's default ephemeral range (32768–60999),
/// so the node's own connections (Tier 3's upstream pool) never pick one.
pub const DEFAULT_NAT_PORTS: (u16, u16) = (61000, 65535);
/// Candidate ports tried per allocation before the splice falls back to Tier 3.
pub const NAT_PROBES: u32 = 8;
/// SYNs sent to the backend (the first and those the client's retransmissions trigger) before the
/// connection falls back to Tier 3.
pub const SYN_TRIES: u32 = 3;

/// [`SpliceState::state`]: the SYN to the backend is out; the client's first segment is stored.
pub const SPLICE_SYN_SENT: u32 = 1;
/// [`SpliceState::state`]: the backend's SYN-ACK arrived; the ACK with the request is out (TC).
pub const SPLICE_ACK_SENT: u32 = 2;
/// [`SpliceState::state`]: the backend acknowledged the request.
pub const SPLICE_ESTABLISHED: u32 = 3;
/// [`SpliceState::state`]: the backend refused the SYN (RST): the client's next retransmission of its
/// first segment is handed to Tier 3.
pub const SPLICE_FAILED: u32 = 4;

/// [`SpliceState::state`]: the endpoint left the route table: the client's or the backend's next segment
/// becomes a RST to the client, and the splice is forgotten.
pub const SPLICE_RESET: u32 = 5;

/// [`BackendLeg::framing`]: no response head parsed since the last request forwarded.
pub const FRAMING_WAITING: u32 = 0;
/// [`BackendLeg::framing`]: the last response's end is [`BackendLeg::response_next`].
pub const FRAMING_KNOWN: u32 = 1;
/// [`BackendLeg::framing`]: a response the kernel cannot frame (chunked, no length, 1xx, a head that
/// does not fit the segment, responses past it). Stays for the rest of the splice.
pub const FRAMING_LOST: u32 = 2;

/// [`SpliceState::fins`] bit: the client sent FIN.
pub const SPLICE_FIN_CLIENT: u32 = 1;
/// [`SpliceState::fins`] bit: the backend sent FIN.
pub const SPLICE_FIN_BACKEND: u32 = 2;
/// [`SpliceState::fins`] bit: the backend acknowledged the client's FIN.
pub const SPLICE_FIN_CLIENT_ACKED: u32 = 4;
/// [`SpliceState::fins`] bit: the client acknowledged the backend's FIN.
pub const SPLICE_FIN_BACKEND_ACKED: u32 = 8;
/// [`SpliceState::fins`] when both sides closed and both FINs are acknowledged: the splice is over.
pub const SPLICE_CLOSED: u32 =
    SPLICE_FIN_CLIENT | SPLICE_FIN_BACKEND | SPLICE_FIN_CLIENT_ACKED | SPLICE_FIN_BACKEND_ACKED;

/// Value of [`SPLICE_CONFIG_MAP`]: whether routing hits are spliced, and the NAT port range.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpliceConfig {
    /// [`crate::maps::VIP_ENABLED`] to splice routing hits; anything else hands them to Tier 3.
    pub enabled: u32,
    /// Lowest NAT port (host order).
    pub port_min: u16,
    /// Highest NAT port (host order), ≥ `port_min`.
    pub port_max: u16,
}

impl SpliceConfig {
    /// Splicing on, NAT ports `min..=max` (host order).
    pub const fn new(min: u16, max: u16) -> Self {
        SpliceConfig {
            enabled: crate::maps::VIP_ENABLED,
            port_min: min,
            port_max: max,
        }
    }

    /// Whether `port` (host order) is a NAT port.
    pub const fn owns_port(&self, port: u16) -> bool {
        self.enabled == crate::maps::VIP_ENABLED && port >= self.port_min && port <= self.port_max
    }
}

/// The backend leg as it sits in the backend's packets to us (network byte order): what a segment to a
/// NAT port must carry to be translated by the leg in that port's [`NAT_MAP`] slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NatKey {
    /// The backend's IPv4 address.
    pub backend_addr: u32,
    /// The node's address the leg uses.
    pub node_addr: u32,
    /// The backend's port.
    pub backend_port: u16,
    /// The allocated NAT port.
    pub nat_port: u16,
}

/// [`BackendLeg::ready`]: the splice is established and the client has not sent FIN: a backend
/// segment without SYN, FIN or RST is translated from the [`BackendLeg`] alone.
pub const LEG_READY: u32 = 1;

/// Value of [`NAT_MAP`]: the client connection a backend leg belongs to and what the backend's segments
/// need, so that the common one (data or ACK of an established splice) costs one lookup. The backend-side
/// framing fields live only here; the rest is a copy of the [`SpliceState`]'s backend → client
/// translation, fixed once the backend's SYN-ACK is in, and valid while [`BackendLeg::ready`] says so.
/// Anything else (handshake, FIN, RST, a reset splice) looks up the splice as well. Addresses, ports and
/// MACs in network order, sequence numbers in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendLeg {
    /// The slot's claim word: even = free, odd = held; every claim, takeover and release changes it
    /// (see [`next_claim`]), and a held value is the claim's clock (ns), so its age is known. Changed
    /// only by compare-and-swap; the splice that holds the slot keeps the value
    /// ([`SpliceState::nat_claim`]) and releases it exactly once.
    pub claim: u64,
    /// The leg's addresses and ports: a segment to this NAT port from anywhere else is not this leg's.
    pub nat: NatKey,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// The client connection (the key of its [`SPLICES_MAP`] entry).
    pub flow: FlowKey,
    /// [`LEG_READY`], or 0: the copy below may be stale, look up the splice. Set by the backend segment
    /// that establishes the splice; cleared by the client's FIN and by a reset.
    pub ready: u32,
    /// [`SpliceState::server_offset`].
    pub server_offset: u32,
    /// [`SpliceState::client_offset`].
    pub client_offset: u32,
    /// Added to the backend's timestamps and SACK edges on the way to the client.
    pub translation: crate::tcpopt::Translation,
    /// Interface towards the client.
    pub client_ifindex: u32,
    /// The client's (or its next hop's) MAC.
    pub client_mac: [u8; 6],
    /// Our MAC on the client side.
    pub vip_mac: [u8; 6],
    /// 1 if timestamps or SACK are agreed (the options are translated).
    pub options: u8,
    /// The backend's window scale shift (its windows arrive scaled by it).
    pub window_from: u8,
    /// Tier 1's window scale towards the client.
    pub window_to: u8,
    /// 1 if the two differ and the window is rescaled.
    pub rescale: u8,
    /// The end of what the backend has sent so far (client space).
    pub backend_end: u32,
    /// Where the next response head starts (client space), or, under [`FRAMING_KNOWN`], where the last
    /// response ends.
    pub response_next: u32,
    /// [`FRAMING_WAITING`], [`FRAMING_KNOWN`] or [`FRAMING_LOST`].
    pub framing: u32,
    /// Response heads parsed on this leg (1xx excluded).
    pub responses: u32,
    /// [`LEG_READY`], or 0: the client → backend copy below may be stale, look up the splice. Set with
    /// [`BackendLeg::ready`] when neither side has closed; cleared by a FIN of either side and by a
    /// reset. While set, a client's pure ACK found through [`CLIENT_INDEX_MAP`] is translated from this
    /// leg alone (see [`CLIENT_INDEX_MAP`]).
    pub client_ready: u32,
    /// The interface towards the backend.
    pub backend_ifindex: u32,
    /// Our MAC on the backend side.
    pub node_mac: [u8; 6],
    /// The backend's (or its next hop's) MAC.
    pub backend_mac: [u8; 6],
    /// Added to the client's timestamps, echoes and SACK edges on the way to the backend.
    pub to_backend: crate::tcpopt::Translation,
    /// The client's window scale shift (its windows arrive scaled by it).
    pub client_window: u8,
    /// 1 if the backend did not take up window scaling: the client's windows are sent unscaled.
    pub client_rescale: u8,
    /// Explicit padding; always zero.
    pub _pad2: [u8; 6],
}

impl BackendLeg {
    /// A new leg of the client connection `flow` whose server stream starts after `cookie`: nothing
    /// sent yet, no response framed, not ready.
    #[inline(always)]
    pub const fn new(flow: FlowKey, cookie: u32) -> BackendLeg {
        BackendLeg {
            claim: 0,
            nat: NatKey {
                backend_addr: 0,
                node_addr: 0,
                backend_port: 0,
                nat_port: 0,
            },
            _pad: 0,
            flow,
            ready: 0,
            server_offset: 0,
            client_offset: 0,
            translation: crate::tcpopt::Translation {
                tsval: 0,
                tsecr: 0,
                sack: 0,
            },
            client_ifindex: 0,
            client_mac: [0; 6],
            vip_mac: [0; 6],
            options: 0,
            window_from: 0,
            window_to: 0,
            rescale: 0,
            backend_end: cookie.wrapping_add(1),
            response_next: cookie.wrapping_add(1),
            framing: FRAMING_WAITING,
            responses: 0,
            client_ready: 0,
            backend_ifindex: 0,
            node_mac: [0; 6],
            backend_mac: [0; 6],
            to_backend: crate::tcpopt::Translation {
                tsval: 0,
                tsecr: 0,
                sack: 0,
            },
            client_window: 0,
            client_rescale: 0,
            _pad2: [0; 6],
        }
    }

    /// The leg of `flow` on `nat`, holding its slot with `claim` (as [`BackendLeg::new`] otherwise).
    #[inline(always)]
    pub const fn claimed(flow: FlowKey, cookie: u32, nat: NatKey, claim: u64) -> BackendLeg {
        let mut leg = BackendLeg::new(flow, cookie);
        leg.claim = claim;
        leg.nat = nat;
        leg
    }

    /// Whether a segment carrying `nat` (backend → node, NAT port) is this slot's leg: the slot is held
    /// and names the same backend, node address and ports.
    #[inline(always)]
    pub const fn carries(&self, nat: &NatKey) -> bool {
        claim_is_held(self.claim)
            && self.nat.backend_addr == nat.backend_addr
            && self.nat.node_addr == nat.node_addr
            && self.nat.backend_port == nat.backend_port
            && self.nat.nat_port == nat.nat_port
    }

    /// Copies the backend → client translation of `s` (complete once the backend's SYN-ACK and its
    /// options are recorded). Leaves [`BackendLeg::ready`] and the framing fields alone.
    #[inline(always)]
    pub fn copy_translation(&mut self, s: &SpliceState) {
        self.server_offset = s.server_offset();
        self.client_offset = s.client_offset();
        // The backend's timestamps are `ts_offset` ahead of Tier 1's clock; its SACK blocks name
        // client bytes on the leg.
        self.translation = crate::tcpopt::Translation {
            tsval: 0u32.wrapping_sub(s.ts_offset),
            tsecr: 0u32.wrapping_sub(s.ts_leg_delta()),
            sack: 0u32.wrapping_sub(s.client_offset()),
        };
        self.client_ifindex = s.client_ifindex;
        self.client_mac = s.client_mac;
        self.vip_mac = s.vip_mac;
        self.options = u8::from(s.agreed.ts != 0 || s.agreed.sack != 0);
        self.window_from = crate::tcpopt::shift_of(s.backend_wscale);
        self.window_to = s.vip_wscale;
        self.rescale = u8::from(s.agreed.scaled() && s.backend_wscale != s.vip_wscale);
        // The other direction, for the client's pure ACKs (as `client_segment` translates them).
        self.backend_ifindex = s.backend_ifindex;
        self.node_mac = s.node_mac;
        self.backend_mac = s.backend_mac;
        self.to_backend = crate::tcpopt::Translation {
            tsval: s.ts_leg_delta(),
            tsecr: s.ts_offset,
            sack: s.server_offset(),
        };
        self.client_window = crate::tcpopt::shift_of(s.agreed.wscale);
        self.client_rescale =
            u8::from(s.agreed.scaled() && s.backend_wscale == crate::tcpopt::WSCALE_NONE);
    }

    /// A client sequence number on the backend leg.
    #[inline(always)]
    pub const fn to_backend_seq(&self, client_seq: u32) -> u32 {
        client_seq.wrapping_add(self.client_offset)
    }

    /// A client acknowledgement number on the backend leg.
    #[inline(always)]
    pub const fn to_backend_ack(&self, client_ack: u32) -> u32 {
        client_ack.wrapping_add(self.server_offset)
    }

    /// A backend sequence number in the client's space.
    #[inline(always)]
    pub const fn to_client_seq(&self, backend_seq: u32) -> u32 {
        backend_seq.wrapping_sub(self.server_offset)
    }

    /// A backend acknowledgement number in the client's space.
    #[inline(always)]
    pub const fn to_client_ack(&self, backend_ack: u32) -> u32 {
        backend_ack.wrapping_sub(self.client_offset)
    }

    /// Whether the client may be moved to another leg now that it sent a request at `client_ack`
    /// (client space), `requests` requests having been forwarded on the leg: the client has everything
    /// the backend sent, and every request forwarded has had its whole response. `Some(true)`: yes,
    /// framed; `Some(false)`: yes, but the last response was not framed (the client acknowledged all
    /// of it, which a client that does not pipeline does only after the response ended); `None`: a
    /// response is still under way (pipelined).
    #[inline(always)]
    pub const fn between_responses(&self, client_ack: u32, requests: u32) -> Option<bool> {
        if client_ack != self.backend_end {
            return None;
        }
        match self.framing {
            FRAMING_KNOWN
                if self.responses == requests && self.response_next == self.backend_end =>
            {
                Some(true)
            }
            FRAMING_LOST => Some(false),
            _ => None,
        }
    }
}

/// One spliced connection. Sequence numbers in host order, addresses and ports in network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpliceState {
    /// [`SPLICE_SYN_SENT`], [`SPLICE_ACK_SENT`], [`SPLICE_ESTABLISHED`] or [`SPLICE_FAILED`].
    pub state: u32,
    /// The client's ISN.
    pub client_isn: u32,
    /// Tier 1's cookie: the ISN the client knows for "the server".
    pub cookie: u32,
    /// Our ISN on the backend leg.
    pub leg_isn: u32,
    /// The backend's ISN (valid from [`SPLICE_ACK_SENT`]).
    pub backend_isn: u32,
    /// The stored request's length.
    pub request_len: u32,
    /// The MSS offered to the backend (the one the client was given).
    pub mss: u32,
    /// [`SPLICE_FIN_CLIENT`] | [`SPLICE_FIN_BACKEND`] | their `_ACKED` bits.
    pub fins: u32,
    /// The sequence number after the client's FIN (client space), once sent.
    pub client_fin_end: u32,
    /// The sequence number after the backend's FIN (client space), once sent.
    pub backend_fin_end: u32,
    /// SYNs sent to the backend so far.
    pub tries: u32,
    /// The client's advertised window at the first segment (unscaled).
    pub window: u32,
    /// The service id the route named (for `/metrics`).
    pub service: u32,
    /// Interface towards the client (where its segments arrive).
    pub client_ifindex: u32,
    /// Interface towards the backend (from the FIB lookup).
    pub backend_ifindex: u32,
    /// The node's address on the backend leg (the FIB's preferred source).
    pub node_addr: u32,
    /// The backend's address.
    pub backend_addr: u32,
    /// The NAT port.
    pub nat_port: u16,
    /// The backend's port.
    pub backend_port: u16,
    /// The client's (or its next hop's) MAC: the Ethernet source of its segments.
    pub client_mac: [u8; 6],
    /// Our MAC on the client side: the Ethernet destination of its segments.
    pub vip_mac: [u8; 6],
    /// Our MAC on the backend side (FIB).
    pub node_mac: [u8; 6],
    /// The backend's (or its next hop's) MAC (FIB).
    pub backend_mac: [u8; 6],
    /// The options agreed with the client (and offered to the backend in our SYN).
    pub agreed: crate::tcpopt::Agreed,
    /// Tier 1's SYN-ACK timestamp value (the client's echo in its first segment).
    pub ts_ours: u32,
    /// The client's timestamp value in its first segment.
    pub ts_client: u32,
    /// Our timestamp value in the SYN to the backend: Tier 1's clock in ~1 µs ticks (`ktime >> 10`), not
    /// the client's value. Clients start every connection at a random timestamp, and a backend that holds
    /// the last use of the same NAT 4-tuple in TIME_WAIT refuses a SYN whose timestamp is older than the
    /// last one it saw there (PAWS, with no tolerance). That last one is our SYN's value plus the
    /// client's elapsed milliseconds; a clock that ticks a thousand times faster than the client's is
    /// ahead of it again after a microsecond, where a millisecond clock fell behind by rounding (found by
    /// `splice_scale`'s TIME_WAIT test). The client's values are moved by `ts_leg − ts_client` on the way
    /// to the backend; within a connection they keep the client's rate. The clock wraps every ~73
    /// minutes, far beyond the 60 s a TIME_WAIT lasts.
    pub ts_leg: u32,
    /// Backend timestamp − Tier 1's (wrapping): subtracted from the backend's timestamp values, added to
    /// the client's echoes. Valid from [`SPLICE_ACK_SENT`].
    pub ts_offset: u32,
    /// The window scale the backend announced ([`crate::tcpopt::WSCALE_NONE`] without window scaling).
    pub backend_wscale: u8,
    /// The window scale Tier 1 announced to the client.
    pub vip_wscale: u8,
    /// 1 if the first request is in [`REQUESTS_MAP`] (else in the pending maps, by its length).
    pub request_in_slot: u16,
    /// Where the client's next request starts (client space): the end of the last request forwarded.
    /// A data segment starting there is a follow-up request and is routed; one before it is a
    /// retransmission and goes on as it is; one past it waits for the gap (dropped).
    pub next_request: u32,
    /// Requests forwarded on this leg (the responses are counted in the leg's [`BackendLeg`]).
    pub requests: u32,
    /// 1 if the last request forwarded was a HEAD (its response has no body whatever its length says).
    pub head_request: u32,
    /// 1 once the leg's framing is [`FRAMING_LOST`] (which it stays): a follow-up's response will not be
    /// read, and is counted as of unknown status when the request is forwarded. A copy of the leg's
    /// state where the client side reads it without a second lookup.
    pub unframed: u32,
    /// The value this splice claimed its [`NAT_MAP`] slot with ([`BackendLeg::claim`]): the slot is
    /// this splice's leg while it holds this value, and is released by a compare-and-swap from it.
    pub nat_claim: u64,
}

const _: () = assert!(core::mem::size_of::<SpliceConfig>() == 8);
const _: () = assert!(core::mem::size_of::<NatKey>() == 12);
const _: () = assert!(core::mem::size_of::<SpliceState>() == 144);
const _: () = assert!(core::mem::size_of::<BackendLeg>() == 136);
const _: () = assert!(core::mem::size_of::<ClientIndex>() == 24);
const _: () = assert!(CLIENT_INDEX_SLOTS.is_power_of_two());

/// Value of [`REQUESTS_MAP`]: a splice's first request and whose it is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplicedRequest {
    /// The NAT claim ([`SpliceState::nat_claim`]) of the splice that stored it.
    pub claim: u64,
    /// That splice's NAT port (host order).
    pub nat_port: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// The request, as the pending maps hold it (its `seq` is the client's ISN + 1).
    pub segment: crate::maps::PendingShort,
}

const _: () =
    assert!(core::mem::size_of::<SplicedRequest>() == 16 + 24 + crate::maps::PENDING_SHORT_BUF);
const _: () = assert!(REQUEST_SLOTS.is_power_of_two());

/// The [`REQUESTS_MAP`] slot of NAT port `port` (host order): one-to-one over any [`REQUEST_SLOTS`]
/// consecutive ports, and independent of the configured range (a reader finds what a writer stored
/// under another configuration, or sees by the tag that it is not its own).
#[inline(always)]
pub const fn request_index(port: u16) -> u32 {
    port as u32 & (REQUEST_SLOTS - 1)
}

impl SplicedRequest {
    /// The port of another splice that may still need this slot's request: `Some(port)` if the slot
    /// holds a request of a port other than `port` (host order); the caller then checks whether that
    /// port's claim still is [`Self::claim`]. `None`: free for `port` (never written, or `port`'s own
    /// earlier request, dead since `port` was claimed again).
    #[inline(always)]
    pub const fn other_holder(&self, port: u16) -> Option<u16> {
        if claim_is_held(self.claim) && self.nat_port != port as u32 {
            Some(self.nat_port as u16)
        } else {
            None
        }
    }
}

/// Whether a [`BackendLeg::claim`] value holds its slot.
#[inline(always)]
pub const fn claim_is_held(claim: u64) -> bool {
    claim & 1 == 1
}

/// The value a claim (of a free slot) or a takeover (of a stale one) writes over `current` at the clock
/// `now` (ns): odd, the clock when it is ahead (so the claim's age can be read back), and always past
/// `current`, so that no two tenures of a slot share a value (a release from a value that is gone fails).
#[inline(always)]
pub const fn next_claim(current: u64, now: u64) -> u64 {
    let bumped = current.wrapping_add(1) | 1;
    if now | 1 > bumped {
        now | 1
    } else {
        bumped
    }
}

/// The value that releases a slot held with `claim` at the clock `now` (ns): even (free), past `claim`,
/// and the release time rounded up to a multiple of 4, so that it can be read back. `quarantine`: the
/// leg did not end with both FINs acknowledged (a RST, a reset, a move, a lost splice), so the backend
/// may still hold the old connection on this 4-tuple if our best-effort RST was lost; bit 1 marks the
/// slot as out of reach of the same backend for [`NAT_QUARANTINE_NS`] (see [`claim_is_quarantined`]).
#[inline(always)]
pub const fn released_claim(claim: u64, now: u64, quarantine: bool) -> u64 {
    let after = if now > claim { now } else { claim };
    let free = (after | 3).wrapping_add(1);
    if quarantine {
        free | 2
    } else {
        free
    }
}

/// How long a NAT port released without a clean close stays out of reach of the backend (address,
/// port and node address) it was last used with: longer than the backend's first retransmissions
/// (200 + 400 + 800 ms at Linux's minimum RTO), which then meet a free port and draw the node's RST, so
/// the old connection is gone before a new leg on the same 4-tuple sends its SYN. Other backends may
/// take the port at once (their 4-tuple differs), and a clean close (both FINs acknowledged: the
/// backend is in TIME_WAIT or closed, which a newer ISN and timestamp pass) is not quarantined.
pub const NAT_QUARANTINE_NS: u64 = 2_000_000_000;

/// Whether a slot whose claim word is `claim` was released without a clean close less than
/// [`NAT_QUARANTINE_NS`] before `now`: it must not be claimed again for the same backend yet.
#[inline(always)]
pub const fn claim_is_quarantined(claim: u64, now: u64) -> bool {
    claim & 3 == 2 && now < claim.saturating_add(NAT_QUARANTINE_NS)
}

/// Whether a slot held with `claim` is old enough at `now` that, if no splice names it, it may be
/// taken over (see [`LEG_STALE_NS`]).
#[inline(always)]
pub const fn claim_is_stale(claim: u64, now: u64) -> bool {
    claim_is_held(claim) && now.saturating_sub(claim) > LEG_STALE_NS
}

impl SpliceState {
    /// The client's first data byte's sequence number.
    #[inline(always)]
    pub const fn first_seq(&self) -> u32 {
        self.client_isn.wrapping_add(1)
    }

    /// Backend ISN − cookie: what backend sequence numbers exceed the client's view of ours.
    #[inline(always)]
    pub const fn server_offset(&self) -> u32 {
        self.backend_isn.wrapping_sub(self.cookie)
    }

    /// Leg ISN − client ISN: what the client's sequence numbers gain on the backend leg.
    #[inline(always)]
    pub const fn client_offset(&self) -> u32 {
        self.leg_isn.wrapping_sub(self.client_isn)
    }

    /// A client sequence number on the backend leg.
    #[inline(always)]
    pub const fn to_backend_seq(&self, client_seq: u32) -> u32 {
        client_seq.wrapping_add(self.client_offset())
    }

    /// A backend acknowledgement number in the client's space.
    #[inline(always)]
    pub const fn to_client_ack(&self, backend_ack: u32) -> u32 {
        backend_ack.wrapping_sub(self.client_offset())
    }

    /// A backend sequence number in the client's space.
    #[inline(always)]
    pub const fn to_client_seq(&self, backend_seq: u32) -> u32 {
        backend_seq.wrapping_sub(self.server_offset())
    }

    /// A client acknowledgement number on the backend leg.
    #[inline(always)]
    pub const fn to_backend_ack(&self, client_ack: u32) -> u32 {
        client_ack.wrapping_add(self.server_offset())
    }

    /// What the client's timestamp values gain on the backend leg (see [`SpliceState::ts_leg`]).
    #[inline(always)]
    pub const fn ts_leg_delta(&self) -> u32 {
        self.ts_leg.wrapping_sub(self.ts_client)
    }

    /// The key of the backend leg in [`NAT_MAP`].
    #[inline(always)]
    pub const fn nat_key(&self) -> NatKey {
        NatKey {
            backend_addr: self.backend_addr,
            node_addr: self.node_addr,
            backend_port: self.backend_port,
            nat_port: self.nat_port,
        }
    }
}

/// `RAUTA_OLD_LEGS`: backend legs a kept-alive connection moved away from, waiting to be closed (LRU hash,
/// [`FlowKey`](crate::maps::FlowKey) of the client's connection → [`OldLeg`]).
///
/// XDP cannot send two packets for one, and the move turns the client's request into the replayed SYN;
/// so the old leg is closed with the next packet a TC program rewrites anyway for that connection: the
/// new backend's SYN-ACK (TC ingress, fresh splice) or the listener's SYN-ACK (TC egress, hand-off to
/// Tier 3). There a RST to the old backend is written into the packet and cloned out
/// (`bpf_clone_redirect`) before the packet becomes what it was going to be.
pub const OLD_LEGS_MAP: &str = "RAUTA_OLD_LEGS";
/// Capacity of [`OLD_LEGS_MAP`]: moves in flight (an entry lives one round trip to the new peer). An
/// entry evicted early only leaves the old leg to the backend's idle timeout.
pub const OLD_LEG_ENTRIES: u32 = 4096;

/// A backend leg to close with a RST (see [`OLD_LEGS_MAP`]). Addresses, ports and MACs as they sit in
/// the packet (network order), `seq` in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OldLeg {
    /// The client connection's ISN after the move (the moved request's seq − 1): the TC programs close
    /// the leg only for the connection that moved, never for a later one on the same 4-tuple.
    pub client_isn: u32,
    /// Our next sequence number on the old leg (what the backend expects): the RST carries it, so the
    /// backend's stack accepts it (RFC 5961 takes a RST only at exactly that number).
    pub seq: u32,
    /// The node's address on the leg.
    pub node_addr: u32,
    /// The old backend's address.
    pub backend_addr: u32,
    /// The leg's NAT port.
    pub nat_port: u16,
    /// The old backend's port.
    pub backend_port: u16,
    /// The interface the old backend is reached on.
    pub backend_ifindex: u32,
    /// The node's MAC on that interface.
    pub node_mac: [u8; 6],
    /// The old backend's (or next hop's) MAC.
    pub backend_mac: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<OldLeg>() == 36);

impl OldLeg {
    /// The leg of `s` to close when its client's request at `request_seq` (client space) moves it.
    #[inline(always)]
    pub const fn of(s: &SpliceState, request_seq: u32) -> OldLeg {
        OldLeg {
            client_isn: request_seq.wrapping_sub(1),
            seq: s.to_backend_seq(request_seq),
            node_addr: s.node_addr,
            backend_addr: s.backend_addr,
            nat_port: s.nat_port,
            backend_port: s.backend_port,
            backend_ifindex: s.backend_ifindex,
            node_mac: s.node_mac,
            backend_mac: s.backend_mac,
        }
    }

    /// Writes the RST that closes the leg.
    #[inline(always)]
    pub fn rst(&self, frame: &mut [u8; RST_V4_LEN]) {
        build_rst_v4(
            (self.node_mac, self.backend_mac),
            (self.node_addr.to_ne_bytes(), self.nat_port.to_ne_bytes()),
            (
                self.backend_addr.to_ne_bytes(),
                self.backend_port.to_ne_bytes(),
            ),
            self.seq,
            frame,
        );
    }
}

/// Length of the RST [`build_rst_v4`] writes: Ethernet (14) + IPv4 (20) + TCP without options (20).
pub const RST_V4_LEN: usize = 54;

/// Writes a RST from `from` to `to` (MACs, addresses and ports as they sit in the packet) with sequence
/// number `seq` (host order), ack 0, window 0, no options, both checksums complete.
#[inline(always)]
pub fn build_rst_v4(
    macs: ([u8; 6], [u8; 6]),
    from: ([u8; 4], [u8; 2]),
    to: ([u8; 4], [u8; 2]),
    seq: u32,
    frame: &mut [u8; RST_V4_LEN],
) {
    let (src_mac, dst_mac) = macs;
    let mut i = 0;
    while i < 6 {
        frame[i] = dst_mac[i];
        frame[6 + i] = src_mac[i];
        i += 1;
    }
    frame[12] = 0x08;
    frame[13] = 0x00;
    let ip = [
        0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, from.0[0], from.0[1], from.0[2], from.0[3],
        to.0[0], to.0[1], to.0[2], to.0[3],
    ];
    let csum = crate::checksum::ipv4_header(&ip).to_be_bytes();
    let seq = seq.to_be_bytes();
    let mut tcp = [
        from.1[0],
        from.1[1],
        to.1[0],
        to.1[1],
        seq[0],
        seq[1],
        seq[2],
        seq[3],
        0,
        0,
        0,
        0,
        5 << 4,
        crate::synack::TCP_RST,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    let sum = crate::checksum::add_words(crate::checksum::pseudo_header_v4(from.0, to.0, 20), &tcp);
    let check = (!fold(sum)).to_be_bytes();
    tcp[16] = check[0];
    tcp[17] = check[1];
    let mut k = 0;
    while k < 20 {
        frame[14 + k] = ip[k];
        frame[34 + k] = tcp[k];
        k += 1;
    }
    frame[24] = csum[0];
    frame[25] = csum[1];
}

/// Makes the TCP checksum of a RST from [`build_rst_v4`] right whatever the skb it is written into
/// says about checksums, which a TC program cannot read. Leaves in the frame the form the kernel
/// wants for `CHECKSUM_PARTIAL` (the pseudo header's sum, completed by whoever transmits it; an skb
/// that left a local socket is one), and returns the adjustment that turns it into the complete
/// checksum: `bpf_l4_csum_replace(skb, 50, 0, adjustment, 0)` applies it to every other skb and
/// leaves a partial one alone (the kernel updates a partial checksum only for pseudo-header changes).
///
/// The kernel computes `~fold(adjustment + ~field)`; with `field = P` and `adjustment = 2P + H`
/// (P the pseudo header's sum, H the header's without its checksum) that is `~fold(P + H)`, the
/// complete checksum. Sums are in network byte order; the caller passes
/// `u64::from(adjustment.swap_bytes())` on a little-endian machine, as the kernel sums words as
/// loaded.
#[inline(always)]
pub fn rst_checksum_forms(frame: &mut [u8; RST_V4_LEN]) -> u16 {
    let from = [frame[26], frame[27], frame[28], frame[29]];
    let to = [frame[30], frame[31], frame[32], frame[33]];
    let pseudo = fold(crate::checksum::pseudo_header_v4(from, to, 20));
    frame[50] = 0;
    frame[51] = 0;
    let mut header = [0u8; 20];
    let mut k = 0;
    while k < 20 {
        header[k] = frame[34 + k];
        k += 1;
    }
    let header = fold(crate::checksum::add_words(0, &header));
    let partial = pseudo.to_be_bytes();
    frame[50] = partial[0];
    frame[51] = partial[1];
    add_sums(add_sums(pseudo, pseudo), header)
}

/// Adds two folded one's-complement sums.
#[inline(always)]
pub const fn add_sums(a: u16, b: u16) -> u16 {
    fold(a as u32 + b as u32)
}

/// The NAT port for probe `attempt` (0..[`NAT_PROBES`]) of the client `key`, spread over `min..=max` by
/// `seed` (a clock, so that a client reconnecting from the same port does not retry the same ports).
#[inline(always)]
pub const fn nat_port_candidate(key: &FlowKey, seed: u32, attempt: u32, min: u16, max: u16) -> u16 {
    let span = (max as u32).saturating_sub(min as u32) + 1;
    let h = crate::flow::fmix32(
        key.client_addr
            ^ ((key.client_port as u32) << 16)
            ^ seed
            ^ attempt.wrapping_mul(0x9e37_79b9),
    );
    (min as u32 + h % span) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SpliceState {
        SpliceState {
            client_isn: 1000,
            cookie: 5000,
            leg_isn: 0xffff_fff0,
            backend_isn: 9000,
            request_len: 60,
            ..SpliceState::default()
        }
    }

    #[test]
    fn client_sequence_numbers_move_by_one_offset_both_ways() {
        let s = state();
        // The first byte is the leg's first byte (the leg ISN wraps).
        assert_eq!(s.to_backend_seq(1001), 0xffff_fff1);
        assert_eq!(s.to_backend_seq(1061), 0xffff_fff1u32.wrapping_add(60));
        for client in [1001u32, 1010, 1061, 1062, u32::MAX] {
            assert_eq!(
                s.to_client_ack(s.to_backend_seq(client)),
                client,
                "{client}"
            );
        }
    }

    #[test]
    fn server_sequence_numbers_translate_both_ways() {
        let s = state();
        assert_eq!(s.to_client_seq(9001), 5001);
        assert_eq!(s.to_backend_ack(5001), 9001);
        assert_eq!(s.to_backend_ack(s.to_client_seq(123_456)), 123_456);
    }

    #[test]
    fn a_switch_waits_for_the_end_of_every_response() {
        let mut leg = BackendLeg {
            backend_end: 7000,
            response_next: 7000,
            framing: FRAMING_KNOWN,
            responses: 2,
            ..BackendLeg::new(FlowKey::default(), 5000)
        };
        assert_eq!(leg.between_responses(7000, 2), Some(true));
        // The client has not acknowledged all the backend sent.
        assert_eq!(leg.between_responses(6999, 2), None);
        // The backend sent past the last framed response (a response the kernel did not see start).
        leg.backend_end = 7100;
        assert_eq!(leg.between_responses(7100, 2), None);
        leg.backend_end = 7000;
        // A request whose response has not started (pipelined).
        assert_eq!(leg.between_responses(7000, 3), None);
        leg.framing = FRAMING_WAITING;
        assert_eq!(leg.between_responses(7000, 2), None);
        // Unframed: all acknowledged is all the kernel can know.
        leg.framing = FRAMING_LOST;
        assert_eq!(leg.between_responses(7000, 3), Some(false));
        assert_eq!(leg.between_responses(6000, 3), None);
    }

    #[test]
    fn a_new_leg_has_sent_nothing_and_waits_for_its_first_response() {
        let leg = BackendLeg::new(FlowKey::default(), u32::MAX);
        assert_eq!((leg.backend_end, leg.response_next), (0, 0));
        assert_eq!(
            (leg.framing, leg.responses, leg.ready),
            (FRAMING_WAITING, 0, 0)
        );
    }

    #[test]
    fn the_legs_copy_translates_backend_segments_as_the_splice_does() {
        let mut s = state();
        s.ts_ours = 100;
        s.ts_client = 5_000;
        s.ts_leg = 70;
        s.ts_offset = 0xffff_ff00;
        s.client_ifindex = 4;
        s.client_mac = [1, 2, 3, 4, 5, 6];
        s.vip_mac = [7, 8, 9, 10, 11, 12];
        s.agreed = crate::tcpopt::Agreed {
            wscale: 7,
            sack: 1,
            ts: 0,
            _pad: 0,
        };
        s.backend_wscale = 9;
        s.vip_wscale = 7;
        let mut leg = BackendLeg::new(FlowKey::default(), s.cookie);
        leg.copy_translation(&s);
        for backend in [9001u32, 9500, 0, u32::MAX] {
            assert_eq!(leg.to_client_seq(backend), s.to_client_seq(backend));
            assert_eq!(leg.to_client_ack(backend), s.to_client_ack(backend));
        }
        // Options in Tier 1's clock and the client's sequence space: the inverse of the client side's.
        assert_eq!(leg.translation.tsval.wrapping_add(s.ts_offset), 0);
        assert_eq!(leg.translation.tsecr.wrapping_add(s.ts_leg_delta()), 0);
        assert_eq!(leg.translation.sack.wrapping_add(s.client_offset()), 0);
        assert_eq!(
            (leg.client_ifindex, leg.client_mac, leg.vip_mac),
            (4, s.client_mac, s.vip_mac)
        );
        assert_eq!(
            (leg.options, leg.window_from, leg.window_to, leg.rescale),
            (1, 9, 7, 1)
        );
        // The framing fields are the leg's own: a copy leaves them.
        assert_eq!(leg.response_next, s.cookie.wrapping_add(1));
        // The same scales: no rescaling; no window scaling: shift 0.
        s.backend_wscale = 7;
        leg.copy_translation(&s);
        assert_eq!(leg.rescale, 0);
        s.backend_wscale = crate::tcpopt::WSCALE_NONE;
        s.agreed = crate::tcpopt::Agreed::NONE;
        leg.copy_translation(&s);
        assert_eq!((leg.options, leg.window_from, leg.rescale), (0, 0, 0));
    }

    #[test]
    fn a_rst_checksum_is_right_as_partial_and_once_completed() {
        let mut f = [0u8; RST_V4_LEN];
        build_rst_v4(
            ([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]),
            ([198, 18, 1, 1], 61_234u16.to_be_bytes()),
            ([198, 18, 1, 2], 8080u16.to_be_bytes()),
            0x1234_5678,
            &mut f,
        );
        let complete = u16::from_be_bytes([f[50], f[51]]);
        let adjustment = rst_checksum_forms(&mut f);
        let field = u16::from_be_bytes([f[50], f[51]]);
        // CHECKSUM_PARTIAL: the pseudo header's sum, which a transmitter completes.
        assert_eq!(
            field,
            fold(crate::checksum::pseudo_header_v4(
                [198, 18, 1, 1],
                [198, 18, 1, 2],
                20
            ))
        );
        // Everything else: what the kernel's update (`inet_proto_csum_replace_by_diff`) makes of it.
        let updated = !fold(adjustment as u32 + (!field) as u32);
        assert_eq!(updated, complete);
    }

    #[test]
    fn an_old_leg_is_reset_at_the_sequence_number_the_backend_expects() {
        let mut s = state();
        s.node_addr = u32::from_ne_bytes([198, 18, 1, 1]);
        s.backend_addr = u32::from_ne_bytes([198, 18, 1, 2]);
        s.nat_port = 61_000u16.to_be();
        s.backend_port = 8080u16.to_be();
        // The client's second request starts 100 bytes after its first data byte.
        let request = s.first_seq().wrapping_add(100);
        let old = OldLeg::of(&s, request);
        assert_eq!(old.client_isn, request.wrapping_sub(1));
        assert_eq!(old.seq, s.leg_isn.wrapping_add(1).wrapping_add(100));
        let mut f = [0u8; RST_V4_LEN];
        old.rst(&mut f);
        assert_eq!(&f[26..30], &[198, 18, 1, 1]);
        assert_eq!(&f[30..34], &[198, 18, 1, 2]);
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), 61_000);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 8080);
        assert_eq!(u32::from_be_bytes([f[38], f[39], f[40], f[41]]), old.seq);
        assert_eq!(f[47], crate::synack::TCP_RST);
    }

    #[test]
    fn a_rst_has_valid_checksums_and_the_given_sequence_number() {
        let mut f = [0u8; RST_V4_LEN];
        build_rst_v4(
            ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]),
            ([198, 18, 0, 1], 80u16.to_be_bytes()),
            ([198, 18, 0, 2], 40000u16.to_be_bytes()),
            0xdead_beef,
            &mut f,
        );
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 2], "to the client's MAC");
        assert!(crate::checksum::ipv4_header_ok(
            &f[14..34].try_into().unwrap()
        ));
        let mut seg = [0u8; 60];
        seg[..20].copy_from_slice(&f[34..54]);
        assert!(crate::checksum::tcp_v4_ok(
            [198, 18, 0, 1],
            [198, 18, 0, 2],
            &seg,
            20
        ));
        assert_eq!(&f[38..42], &0xdead_beefu32.to_be_bytes());
        assert_eq!(f[47], crate::synack::TCP_RST);
    }

    #[test]
    fn nat_ports_stay_in_range_and_spread() {
        let key = FlowKey::new([198, 18, 0, 2], 40000, [198, 18, 0, 1], 80);
        let mut seen = [false; 16];
        for attempt in 0..NAT_PROBES {
            let p = nat_port_candidate(&key, 7, attempt, 61000, 61015);
            assert!((61000..=61015).contains(&p));
            seen[(p - 61000) as usize] = true;
        }
        assert!(seen.iter().filter(|s| **s).count() > 3);
        assert_eq!(nat_port_candidate(&key, 7, 0, 5, 5), 5);
        let config = SpliceConfig::new(61000, 65535);
        assert!(config.owns_port(61000) && config.owns_port(65535) && !config.owns_port(60999));
    }

    #[test]
    fn nat_ports_released_without_a_clean_close_are_quarantined_for_a_while() {
        let claim = next_claim(0, 7_000_000_000);
        // Released with a RST 3 ms later: free, past the claim, and quarantined until 2 s after.
        let released = released_claim(claim, 7_003_000_000, true);
        assert!(!claim_is_held(released) && released > claim);
        assert!((7_003_000_000..7_003_000_008).contains(&released));
        assert!(claim_is_quarantined(released, 7_003_000_000));
        assert!(claim_is_quarantined(
            released,
            released + NAT_QUARANTINE_NS - 1
        ));
        assert!(!claim_is_quarantined(
            released,
            released + NAT_QUARANTINE_NS
        ));
        // A clock behind the claim (another CPU's view) still releases past it.
        let behind = released_claim(claim, 1, true);
        assert!(behind > claim && !claim_is_held(behind) && claim_is_quarantined(behind, 1));
        // A clean close is never quarantined, and the next claim is past either value.
        let clean = released_claim(claim, 7_003_000_000, false);
        assert!(!claim_is_quarantined(clean, 7_003_000_000) && clean > claim);
        assert!(next_claim(released, 7_003_000_000) > released);
        assert!(claim_is_held(next_claim(released, 7_003_000_000)));
        // A never used slot (0) is free and not quarantined; a held one is never quarantined.
        assert!(!claim_is_quarantined(0, 0));
        assert!(!claim_is_quarantined(claim, claim));
        // No wrap at the end of the clock.
        assert!(!claim_is_held(released_claim(u64::MAX - 2, u64::MAX, true)));
    }

    #[test]
    fn nat_claims_never_repeat_and_age_from_their_clock() {
        // A free slot (0) claimed at 5 s: held, valued by the clock.
        let first = next_claim(0, 5_000_000_000);
        assert!(claim_is_held(first));
        assert_eq!(first, 5_000_000_001);
        let freed = released_claim(first, 5_000_000_000, false);
        assert!(!claim_is_held(freed));
        assert!(!claim_is_quarantined(freed, 5_000_000_000), "a clean close");
        // Claimed again in the same nanosecond (or with a clock behind): still past every earlier
        // value, so a release from an old value cannot free the new tenure.
        let again = next_claim(freed, 5_000_000_000);
        assert!(claim_is_held(again) && again > freed);
        // A takeover of a held slot changes the value too.
        let taken = next_claim(again, 4_000_000_000);
        assert!(claim_is_held(taken) && taken > again);
        // Stale only when held and older than LEG_STALE_NS.
        assert!(!claim_is_stale(first, first + LEG_STALE_NS));
        assert!(claim_is_stale(first, first + LEG_STALE_NS + 1));
        assert!(!claim_is_stale(freed, u64::MAX));
        assert!(
            !claim_is_stale(first, 0),
            "a clock behind the claim is not an age"
        );
    }

    #[test]
    fn a_leg_carries_only_segments_of_its_own_four_tuple() {
        let nat = NatKey {
            backend_addr: 0x0201_12c6,
            node_addr: 0x0101_12c6,
            backend_port: 8080u16.to_be(),
            nat_port: 61000u16.to_be(),
        };
        let leg = BackendLeg::claimed(FlowKey::default(), 7, nat, 11);
        assert!(leg.carries(&nat));
        for other in [
            NatKey {
                backend_addr: 0x0301_12c6,
                ..nat
            },
            NatKey {
                node_addr: 0x0501_12c6,
                ..nat
            },
            NatKey {
                backend_port: 8081u16.to_be(),
                ..nat
            },
            NatKey {
                nat_port: 61001u16.to_be(),
                ..nat
            },
        ] {
            assert!(!leg.carries(&other), "{other:?}");
        }
        let free = BackendLeg {
            claim: released_claim(11, 0, false),
            ..leg
        };
        assert!(!free.carries(&nat), "a free slot carries nothing");
    }

    #[test]
    fn request_slots_are_one_to_one_over_any_range_of_their_size() {
        for start in [0u16, 1024, 50001, 57344] {
            // A bit per slot (no_std: no HashSet).
            let mut seen = [0u64; REQUEST_SLOTS as usize / 64];
            for port in start..=start + (REQUEST_SLOTS - 1) as u16 {
                let index = request_index(port);
                assert!(index < REQUEST_SLOTS);
                let (word, bit) = (index as usize / 64, 1u64 << (index % 64));
                assert!(seen[word] & bit == 0, "port {port} shares slot {index}");
                seen[word] |= bit;
            }
        }
        assert_eq!(
            request_index(61000),
            request_index(61000 - REQUEST_SLOTS as u16)
        );
    }

    #[test]
    fn a_request_slot_is_free_unless_another_port_wrote_it() {
        let empty = SplicedRequest {
            claim: 0,
            nat_port: 0,
            _pad: 0,
            segment: crate::maps::Pending {
                len: 0,
                flags: 0,
                window: 0,
                sum: 0,
                seq: 0,
                tsval: 0,
                data: [0; crate::maps::PENDING_SHORT_BUF],
            },
        };
        assert_eq!(empty.other_holder(61000), None, "never written");
        let own = SplicedRequest {
            claim: next_claim(0, 5_000),
            nat_port: 61000,
            ..empty
        };
        assert_eq!(
            own.other_holder(61000),
            None,
            "the port's own earlier request"
        );
        assert_eq!(
            own.other_holder(61000 - REQUEST_SLOTS as u16),
            Some(61000),
            "a port sharing it"
        );
        let released = SplicedRequest {
            claim: released_claim(own.claim, 0, false),
            ..own
        };
        assert_eq!(
            released.other_holder(52808),
            None,
            "an even claim holds nothing"
        );
    }

    #[test]
    fn a_route_is_used_for_its_backend_and_interface_for_a_second() {
        let entry = FibEntry {
            checked_ns: 5_000_000_000,
            backend_addr: 0x0201_12c6,
            ingress: 3,
            ifindex: 4,
            node_addr: 0x0101_12c6,
            node_mac: [2; 6],
            backend_mac: [3; 6],
            _pad: 0,
        };
        assert!(entry.fresh_for(0x0201_12c6, 3, 5_000_000_000));
        assert!(entry.fresh_for(0x0201_12c6, 3, 5_999_999_999));
        assert!(!entry.fresh_for(0x0201_12c6, 3, 6_000_000_000), "aged");
        assert!(
            !entry.fresh_for(0x0301_12c6, 3, 5_000_000_001),
            "another backend"
        );
        assert!(
            !entry.fresh_for(0x0201_12c6, 2, 5_000_000_001),
            "another interface"
        );
        assert!(!FibEntry::default().fresh_for(0, 0, 1), "never looked up");
        assert!(fib_cache_index(u32::MAX) < FIB_CACHE_SLOTS);
    }

    #[test]
    fn client_index_spreads_one_clients_ports() {
        // One client opening many connections to one VIP (the common case behind a NAT or in a
        // load test) must not pile into a few slots: ports alone spread it.
        // A bit per slot (no_std: no HashSet).
        let mut seen = [0u64; CLIENT_INDEX_SLOTS as usize / 64];
        let mut shared = 0;
        for port in 20000u16..21000 {
            let key = FlowKey::new([198, 18, 0, 2], port, [198, 18, 0, 1], 80);
            let index = client_index(&key);
            assert!(index < CLIENT_INDEX_SLOTS);
            let (word, bit) = (index as usize / 64, 1u64 << (index % 64));
            shared += u32::from(seen[word] & bit != 0);
            seen[word] |= bit;
        }
        // A random function puts ~7.6 of 1,000 keys into a taken slot of 65,536.
        assert!(shared < 30, "{shared} of 1,000 ports share a slot");
        // The VIP's address takes part (a client whose address is the VIP's does not cancel it).
        let a = FlowKey::new([198, 18, 0, 1], 20000, [198, 18, 0, 1], 80);
        let b = FlowKey::new([198, 18, 0, 1], 20000, [198, 18, 0, 3], 80);
        assert_ne!(client_index(&a), client_index(&b));
    }

    #[test]
    fn a_leg_translates_client_segments_as_its_splice() {
        let s = SpliceState {
            ts_leg: 700,
            ts_client: 100,
            ts_offset: 55,
            backend_wscale: crate::tcpopt::WSCALE_NONE,
            ..state()
        };
        let mut leg = BackendLeg::default();
        leg.copy_translation(&s);
        for n in [0u32, 1, 0x7fff_ffff, u32::MAX] {
            assert_eq!(leg.to_backend_seq(n), s.to_backend_seq(n));
            assert_eq!(leg.to_backend_ack(n), s.to_backend_ack(n));
        }
        assert_eq!(leg.to_backend.tsval, s.ts_leg_delta());
        assert_eq!(leg.to_backend.tsecr, 55);
        assert_eq!(leg.to_backend.sack, s.server_offset());
    }
}
