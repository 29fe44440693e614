//! Map names, layouts and limits shared by the BPF programs (XDP and TC) and their loader.
//!
//! Every value type is `#[repr(C)]` with explicit padding fields (zeroed by the constructors) so that the
//! layout the kernel stores is exactly the one both sides compile, and flags are `u32`, never `bool`
//! (a `bool` with any bit pattern but 0 or 1 would be undefined behaviour when read back).
#![forbid(unsafe_code)]

/// Name of the VIP configuration map (`BPF_MAP_TYPE_ARRAY`, one [`VipConfig`] at index 0). Written by
/// userspace; read by the XDP program on every packet.
pub const VIP_MAP: &str = "RAUTA_VIP";

/// Name of the per-CPU counter map (`BPF_MAP_TYPE_PERCPU_ARRAY` of `u64`, [`COUNTER_SLOTS`] entries,
/// indexed by [`crate::reason::Reason`]). Written by the XDP program; userspace sums the CPUs.
pub const COUNTERS_MAP: &str = "RAUTA_COUNTERS";

/// Name of the per-CPU scratch map (`BPF_MAP_TYPE_PERCPU_ARRAY`, one entry): buffers too large for the
/// 512-byte BPF stack. Private to the XDP program.
pub const SCRATCH_MAP: &str = "RAUTA_SCRATCH";

/// Name of the XDP program that implements Tier 1.
pub const XDP_PROGRAM: &str = "rauta_xdp";

/// Name of a trivial XDP program that passes every packet. veth delivers `XDP_TX` frames only when the
/// peer device has an XDP program attached, so test topologies attach this one to the peer.
pub const XDP_PASS_PROGRAM: &str = "rauta_xdp_pass";

/// Name of the flow map (`BPF_MAP_TYPE_LRU_HASH`, [`FlowKey`] → [`FlowState`], [`FLOW_ENTRIES`]): one
/// entry per connection Tier 1 handed to the local listener, shared by the XDP and the TC program.
pub const FLOWS_MAP: &str = "RAUTA_FLOWS";

/// Name of the pending-segment map (`BPF_MAP_TYPE_LRU_HASH`, [`FlowKey`] → [`PendingSegment`],
/// [`PENDING_ENTRIES`]): the client's first data segment, from the moment XDP replays the SYN until TC
/// has turned the listener's SYN-ACK into the ACK carrying it.
pub const PENDING_MAP: &str = "RAUTA_PENDING";

/// Name of the short pending-segment map (`BPF_MAP_TYPE_LRU_HASH`, [`FlowKey`] → [`PendingShort`],
/// [`PENDING_ENTRIES`]): [`PENDING_MAP`] for first segments of at most [`PENDING_SHORT_BUF`] bytes, i.e.
/// most requests. Its insert copies a quarter of the bytes (the 2 KB copy was ~5 % of a first request).
/// A segment is stored in one of the two; a reader takes the short entry only if its `seq` is the one
/// it expects (the connection's ISN + 1), so an entry an earlier connection on the same 4-tuple left
/// behind never shadows the other map's.
pub const PENDING_SHORT_MAP: &str = "RAUTA_PENDING_SHORT";

/// Name of the held-segment map (`BPF_MAP_TYPE_LRU_HASH`, [`HeldKey`] → [`PendingSegment`],
/// [`HELD_ENTRIES`]): segments 2..=[`HELD_MAX`]+1 of a first request that arrive before the listener's
/// socket exists, until TC injects them behind the hand-off ACK.
pub const HELD_MAP: &str = "RAUTA_HELD";

/// Most segments held per flow after the first one (a request head of up to 5 × 1460 bytes is handed off
/// without waiting for the client's retransmission; later segments are dropped and retransmitted).
pub const HELD_MAX: u32 = 4;

/// Capacity of [`HELD_MAP`].
pub const HELD_ENTRIES: u32 = 4096;

/// Name of the TC (clsact egress) program that completes the hand-off.
pub const TC_EGRESS_PROGRAM: &str = "rauta_tc_egress";

/// Capacity of [`FLOWS_MAP`]. LRU: when full, the least recently used flow is evicted. A flow with a
/// zero offset (the normal case) loses nothing by eviction; one with a non-zero offset loses its
/// translation.
pub const FLOW_ENTRIES: u32 = 65536;

/// Capacity of [`PENDING_MAP`]. An entry lives for one local round trip (SYN → SYN-ACK), so this bounds
/// hand-offs in flight, not connections.
pub const PENDING_ENTRIES: u32 = 4096;

/// Size of [`PendingSegment::data`].
pub const PENDING_BUF: usize = 2048;

/// Size of [`PendingShort::data`]: first segments up to this long go to [`PENDING_SHORT_MAP`].
pub const PENDING_SHORT_BUF: usize = 512;

/// Largest first segment Tier 1 stores (leaves room for the zero padding the checksum reads). Clients
/// honour the MSS of the SYN-ACK (at most 1460), so a larger first segment means a jumbo-frame client
/// ignoring it; it is dropped and counted.
pub const PENDING_PAYLOAD_MAX: u32 = (PENDING_BUF - 4) as u32;

/// [`FlowState::state`]: the first data segment is stored and the SYN replayed to the listener.
pub const FLOW_REPLAYED: u32 = 1;
/// [`FlowState::state`]: the listener's SYN-ACK became the ACK with the stored data; the listener's socket
/// exists once the stack has processed it.
pub const FLOW_ACK_SENT: u32 = 2;
/// [`FlowState::state`]: the listener's socket is known to exist (it sent on it, or a lookup found it).
pub const FLOW_SPLICED: u32 = 3;

/// [`FlowState::fins`] bit: the client sent FIN.
pub const FIN_CLIENT: u32 = 1;
/// [`FlowState::fins`] bit: the listener sent FIN.
pub const FIN_LISTENER: u32 = 2;

/// Key of [`FLOWS_MAP`] and [`PENDING_MAP`]: the connection's 4-tuple as it sits in the client's packets
/// (network byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The client's IPv4 address.
    pub client_addr: u32,
    /// The VIP.
    pub vip_addr: u32,
    /// The client's port.
    pub client_port: u16,
    /// The VIP's port.
    pub vip_port: u16,
}

impl FlowKey {
    /// The key of the connection from `client` to `vip` (octets and host-order ports).
    pub const fn new(client: [u8; 4], client_port: u16, vip: [u8; 4], vip_port: u16) -> Self {
        FlowKey {
            client_addr: u32::from_ne_bytes(client),
            vip_addr: u32::from_ne_bytes(vip),
            client_port: u16::from_ne_bytes(client_port.to_be_bytes()),
            vip_port: u16::from_ne_bytes(vip_port.to_be_bytes()),
        }
    }
}

/// A connection handed to the local listener. Sequence numbers in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowState {
    /// [`FLOW_REPLAYED`], [`FLOW_ACK_SENT`] or [`FLOW_SPLICED`].
    pub state: u32,
    /// The client's ISN (its first data segment's seq − 1).
    pub client_isn: u32,
    /// Tier 1's cookie: the ISN the client knows for us (its first ACK's ack − 1).
    pub cookie: u32,
    /// Listener ISN − cookie (wrapping): added to the client's ack numbers, subtracted from the
    /// listener's seq numbers. 0 when the listener issued the same cookie (the normal case).
    pub offset: u32,
    /// The MSS put into the replayed SYN (decoded from the cookie, or a lower bound when it could not be).
    pub mss: u32,
    /// [`FIN_CLIENT`] | [`FIN_LISTENER`]: which sides have closed.
    pub fins: u32,
    /// The client's sequence number after the first segment and every held one: the next segment Tier 1
    /// may hold.
    pub next_seq: u32,
    /// Segments held in [`HELD_MAP`] under indexes `0..held`, not injected yet.
    pub held: u32,
    /// The options agreed with the client (and offered to the listener in the replayed SYN).
    pub agreed: crate::tcpopt::Agreed,
    /// Tier 1's SYN-ACK timestamp value (the client's echo in its first segment).
    pub ts_ours: u32,
    /// Listener timestamp − Tier 1's (wrapping): subtracted from the listener's timestamp values, added
    /// to the client's echoes. Valid from [`FLOW_ACK_SENT`].
    pub ts_delta: u32,
    /// The window scale the listener announced (its windows are rescaled to the VIP's when they differ;
    /// [`crate::tcpopt::WSCALE_NONE`] without window scaling).
    pub peer_wscale: u32,
}

/// Key of [`HELD_MAP`]: the flow and the held segment's index (0-based, in sequence order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeldKey {
    /// The flow.
    pub flow: FlowKey,
    /// 0..[`HELD_MAX`].
    pub index: u32,
}

/// The client's first data segment, waiting for the listener's SYN-ACK, with room for `N` payload bytes.
/// Two sizes share the one layout (the BPF side stores a prefix of the segment it captured into the
/// short one): [`PendingSegment`] and [`PendingShort`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending<const N: usize> {
    /// Payload length in bytes (1..=`N`).
    pub len: u32,
    /// The segment's PSH and FIN flags (carried over to the hand-off ACK).
    pub flags: u32,
    /// The client's advertised window, as in the segment (scaled by the client's window scale).
    pub window: u32,
    /// One's-complement sum of the payload's big-endian 16-bit words, folded to 16 bits.
    pub sum: u32,
    /// The segment's sequence number (host order).
    pub seq: u32,
    /// The segment's timestamp value (0 without timestamps).
    pub tsval: u32,
    /// The payload; bytes past `len` are undefined except the up to 3 zero bytes that pad it to a multiple
    /// of 4.
    pub data: [u8; N],
}

/// A first segment of up to [`PENDING_PAYLOAD_MAX`] bytes (the value of the 2 KB pending map).
pub type PendingSegment = Pending<PENDING_BUF>;

/// A first segment of at most [`PENDING_SHORT_BUF`] bytes (the value of [`PENDING_SHORT_MAP`]).
pub type PendingShort = Pending<PENDING_SHORT_BUF>;

/// Name of the first-request latency map (`BPF_MAP_TYPE_PERCPU_ARRAY` of `u64`, [`LATENCY_SLOTS`]
/// entries): a log2 histogram of the XDP program's own run time on first data segments that are routing
/// hits (Tier 1 first requests), from the moment the segment is recognised as one (after the cookie
/// check) to the verdict: storing it, the route decision, the header check and the SYN to the backend,
/// tail calls included (a hit that falls back to Tier 3 is timed to its hand-off). Slot `k` < [`LATENCY_BUCKETS`] counts runs of `d` ns with
/// `d < 2^k` and `d >= 2^(k-1)` (slot 0: `d = 0`); slot [`LATENCY_SUM_SLOT`] holds the sum of `d`.
pub const LATENCY_MAP: &str = "RAUTA_LATENCY";
/// Buckets of [`LATENCY_MAP`] (the last one also takes every longer run).
pub const LATENCY_BUCKETS: u32 = 32;
/// The slot of [`LATENCY_MAP`] that sums the run times (ns).
pub const LATENCY_SUM_SLOT: u32 = LATENCY_BUCKETS;
/// Slots of [`LATENCY_MAP`].
pub const LATENCY_SLOTS: u32 = LATENCY_BUCKETS + 1;

/// Name of the Tier 1 response status map (`BPF_MAP_TYPE_PERCPU_ARRAY` of `u64`,
/// [`STATUS_CLASS_SLOTS`] entries): the responses of spliced requests by status class. Slot `c` (1-5)
/// counts the response heads whose status line reads `HTTP/1.x cNN`, read as the response program frames
/// them; slot [`STATUS_CLASS_UNKNOWN`] counts responses the kernel does not read: a head whose status line
/// it cannot parse, and every request forwarded on a splice whose responses it no longer follows
/// (framing lost, see `BackendLeg::framing`).
pub const STATUS_CLASSES_MAP: &str = "RAUTA_STATUS_CLASSES";
/// The slot of [`STATUS_CLASSES_MAP`] for responses whose status the kernel did not read.
pub const STATUS_CLASS_UNKNOWN: u32 = 0;
/// Slots of [`STATUS_CLASSES_MAP`]: unknown, then 1xx to 5xx.
pub const STATUS_CLASS_SLOTS: u32 = 6;

/// The [`STATUS_CLASSES_MAP`] slot of a response head's first bytes (`HTTP/1.x NNN`): its status class,
/// or [`STATUS_CLASS_UNKNOWN`].
#[inline(always)]
pub fn status_class_slot(head: &[u8; 12]) -> u32 {
    let class = head[9];
    if head[..7] == *b"HTTP/1." && head[8] == b' ' && (b'1'..=b'5').contains(&class) {
        u32::from(class - b'0')
    } else {
        STATUS_CLASS_UNKNOWN
    }
}

/// The [`LATENCY_MAP`] bucket of a run of `ns` nanoseconds: its bit length, capped.
pub const fn latency_bucket(ns: u64) -> u32 {
    let bits = 64 - ns.leading_zeros();
    if bits >= LATENCY_BUCKETS {
        LATENCY_BUCKETS - 1
    } else {
        bits
    }
}

/// Number of slots in the counter map. Larger than the number of reasons so that new reasons do not
/// change the map's size (a loader and an object of neighbouring versions still agree).
pub const COUNTER_SLOTS: u32 = 64;

/// Largest TCP header (doff = 15).
pub const TCP_MAX_HEADER: usize = 60;

/// Size of the SYN-ACK the XDP program sends: Ethernet (14) + IPv4 without options (20) + TCP (20) with
/// [`crate::tcpopt::SYN_OPTIONS_LEN`] bytes of options.
pub const SYNACK_V4_LEN: usize = 14 + 20 + 20 + crate::tcpopt::SYN_OPTIONS_LEN;

/// The window scale Linux announces with its default buffer sizes (`tcp_rmem[2]` = 6 MiB): what
/// [`VipConfig::new`] announces until the loader sets the node's own.
pub const DEFAULT_WSCALE: u8 = 7;

/// `VipConfig::enabled` value that turns the program on.
pub const VIP_ENABLED: u32 = 1;

/// The virtual IP and port Tier 1 answers for. Traffic to any other destination passes untouched.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipConfig {
    /// IPv4 address, in network byte order as it sits in the packet (`u32::from_ne_bytes(octets)`).
    pub addr_be: u32,
    /// TCP port, in network byte order as it sits in the packet (`u16::from_ne_bytes(port.to_be_bytes())`).
    pub port_be: u16,
    /// The window scale Tier 1 announces to clients that offer window scaling: the one the node's own
    /// listener computes (`ilog2(max(tcp_rmem[2], rmem_max)) − 15`), so that handed-off connections need
    /// no window rewriting. Windows of a peer that chose another scale are rescaled to this one.
    pub wscale: u8,
    /// 1: record each connection's first routing decision in `RAUTA_DECISIONS` (tests and diagnostics,
    /// `KernelTiers::record_decisions`); 0, the default: nothing in the product reads them, and the
    /// insert into that 65,536-entry LRU map was ~7 % of a first request's time.
    pub record_decisions: u8,
    /// [`VIP_ENABLED`] to answer for this VIP; anything else passes all traffic.
    pub enabled: u32,
}

impl VipConfig {
    /// An enabled VIP for `octets:port` (port in host order).
    pub const fn new(octets: [u8; 4], port: u16) -> Self {
        VipConfig {
            addr_be: u32::from_ne_bytes(octets),
            port_be: u16::from_ne_bytes(port.to_be_bytes()),
            wscale: DEFAULT_WSCALE,
            record_decisions: 0,
            enabled: VIP_ENABLED,
        }
    }

    /// The address octets.
    pub const fn octets(&self) -> [u8; 4] {
        self.addr_be.to_ne_bytes()
    }

    /// The port in host byte order.
    pub const fn port(&self) -> u16 {
        u16::from_be_bytes(self.port_be.to_ne_bytes())
    }
}

// The layout is part of the kernel/userspace contract: fail the build if it changes by accident.
const _: () = assert!(core::mem::size_of::<VipConfig>() == 12);
const _: () = assert!(core::mem::size_of::<FlowKey>() == 12);
const _: () = assert!(core::mem::size_of::<FlowState>() == 48);
const _: () = assert!(core::mem::size_of::<HeldKey>() == 16);
const _: () = assert!(core::mem::size_of::<PendingSegment>() == 24 + PENDING_BUF);
const _: () = assert!(core::mem::size_of::<PendingShort>() == 24 + PENDING_SHORT_BUF);
// A short entry is stored from a prefix of a captured `PendingSegment` (one generic layout, so every field
// is at the same offset by construction).
const _: () = assert!(PENDING_SHORT_BUF <= PENDING_BUF && PENDING_SHORT_BUF.is_power_of_two());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_come_from_the_status_line() {
        let slot = |head: &[u8]| status_class_slot(head[..12].try_into().unwrap());
        assert_eq!(slot(b"HTTP/1.1 200 OK\r\n"), 2);
        assert_eq!(slot(b"HTTP/1.0 404 Not Found"), 4);
        assert_eq!(slot(b"HTTP/1.1 503 Busy\r\n"), 5);
        assert_eq!(slot(b"HTTP/1.1 101 Switching"), 1);
        assert_eq!(slot(b"HTTP/1.1 604 Nonsense"), STATUS_CLASS_UNKNOWN);
        assert_eq!(slot(b"HTTP/2.0 200 OK\r\n\r\n"), STATUS_CLASS_UNKNOWN);
        assert_eq!(slot(b"SSH-2.0-OpenSSH_9"), STATUS_CLASS_UNKNOWN);
    }

    #[test]
    fn vip_config_round_trips_network_order() {
        let vip = VipConfig::new([198, 18, 0, 1], 8080);
        assert_eq!(vip.octets(), [198, 18, 0, 1]);
        assert_eq!(vip.port(), 8080);
        assert_eq!(vip.port_be.to_ne_bytes(), 8080u16.to_be_bytes());
        assert_eq!(vip.enabled, VIP_ENABLED);
    }

    #[test]
    fn latency_buckets_are_bit_lengths() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(1), 1);
        assert_eq!(latency_bucket(255), 8);
        assert_eq!(latency_bucket(256), 9);
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn every_reason_fits_the_counter_map() {
        assert!((crate::reason::Reason::COUNT as u32) <= COUNTER_SLOTS);
    }
}
