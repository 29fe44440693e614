//! Tier 1's route maps (written from the compiled route table, read by XDP on a first data segment) and
//! the stable codes of its routing decision.
//!
//! Keys carry the host and path **bytes**, not hashes: the kernel's hash map compares whole keys, so two
//! different (host, path) pairs can never share an entry and a collision can never route a request to
//! the wrong service. The price is a 196-byte key (one jhash over it per lookup) and length limits
//! ([`ROUTE_HOST_MAX`], [`ROUTE_PATH_MAX`]); longer hosts or paths stay in Tier 3.
//!
//! Maglev: every kernel-eligible service has its own table, written slot by slot from the very
//! `rauta_maglev::MaglevTable` Tier 3 uses, so both tiers pick the same endpoint for the same client
//! (`flow_hash_v4(client address, client port) % table_size`).
//!
//! Consistency while userspace rewrites the maps: service ids and slot ranges are double-buffered. Each
//! update writes the services' slots into the *other* bank's half of [`SLOTS_MAP`] (an array: bank `b`
//! owns indexes `b * SLOTS_PER_BANK ..`) and the services under that bank's ids ([`SERVICE_BANK_BIT`]),
//! then points every route at them (one hash-map update per route, atomic for readers: the route value
//! carries the service id, its table size and its slot base, so the program needs no other lookup to find
//! the slot), then deletes stale routes and the old bank's service entries. A reader holds either an old
//! or a new route value, and each one's slot range is complete: the old bank's half of the slot array is
//! only rewritten by the update after next. An unwritten (all-zero) slot counts
//! [`RouteReason::NoEndpoint`] — a miss (Tier 3), never a wrong endpoint.
#![forbid(unsafe_code)]

/// Name of the route map (`BPF_MAP_TYPE_HASH`, [`RouteKey`] → [`RouteValue`], [`ROUTE_ENTRIES`]).
pub const ROUTES_MAP: &str = "RAUTA_ROUTES";
/// Name of the service map (`BPF_MAP_TYPE_HASH`, service id `u32` → [`ServiceEntry`],
/// [`SERVICE_ENTRIES`]): the services of the active bank, for userspace (tests, diagnostics). The
/// programs read what they need from the route value.
pub const SERVICES_MAP: &str = "RAUTA_SERVICES";
/// Name of the Maglev slot map (`BPF_MAP_TYPE_ARRAY`, index `u32` → [`Endpoint`], [`SLOT_ENTRIES`]):
/// a service's slot `s` is at [`RouteValue::slot_base`] + `s`. An array, not a hash: the lookup is a
/// bounds check and an add the verifier inlines (no hashing, no bucket walk), and a table's slots are
/// contiguous.
pub const SLOTS_MAP: &str = "RAUTA_SLOTS";
/// Name of the per-CPU route-decision counter map (`BPF_MAP_TYPE_PERCPU_ARRAY` of `u64`,
/// [`ROUTE_COUNTER_SLOTS`] entries, indexed by [`RouteReason`]).
pub const ROUTE_COUNTERS_MAP: &str = "RAUTA_ROUTE_COUNTERS";
/// Name of the decision map (`BPF_MAP_TYPE_LRU_HASH`, `FlowKey` → [`RouteDecision`],
/// `FLOW_ENTRIES`): the routing decision taken for a flow's first data segment.
pub const DECISIONS_MAP: &str = "RAUTA_DECISIONS";

/// Longest host (after lowercasing, without port and trailing dot) the kernel routes.
pub const ROUTE_HOST_MAX: usize = 64;
/// Longest path (origin form, without the query) the kernel routes.
pub const ROUTE_PATH_MAX: usize = 128;
/// The request head (request line + headers + empty line) must end within this many bytes of the
/// first segment; longer heads go to Tier 3 ([`RouteReason::HeadTooLong`]).
pub const HEAD_SCAN_MAX: u32 = 1024;
/// Bytes of a Host header value scanned (host, optional `:port`, optional whitespace).
pub const HOST_SCAN_MAX: u32 = 96;
/// Capacity of [`ROUTES_MAP`].
pub const ROUTE_ENTRIES: u32 = 8192;
/// Services per bank; [`SERVICES_MAP`] holds two banks.
pub const SERVICES_PER_BANK: u32 = 1024;
/// Capacity of [`SERVICES_MAP`] (both banks).
pub const SERVICE_ENTRIES: u32 = 2 * SERVICES_PER_BANK;
/// Capacity of [`SLOTS_MAP`] (both banks: 8 MB of endpoints, allocated when the object loads).
pub const SLOT_ENTRIES: u32 = 1 << 20;
/// Slots per bank: bank `b`'s slots are the indexes `b * SLOTS_PER_BANK .. (b + 1) * SLOTS_PER_BANK`.
pub const SLOTS_PER_BANK: u32 = SLOT_ENTRIES / 2;
/// The bit of a service id that names its bank.
pub const SERVICE_BANK_BIT: u32 = 1 << 31;

/// [`RouteValue::methods`] bit: GET is routed in the kernel.
pub const METHOD_GET: u32 = 1;
/// [`RouteValue::methods`] bit: HEAD is routed in the kernel.
pub const METHOD_HEAD: u32 = 2;

/// Key of [`ROUTES_MAP`]: a lowercased host without port and trailing dot, and an Exact path. Bytes past
/// the lengths are zero, so equal (host, path) pairs have byte-equal keys. Aligned to 4 so that zeroing
/// it in BPF takes 49 word stores.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteKey {
    /// Bytes of `host` in use (1..=[`ROUTE_HOST_MAX`]).
    pub host_len: u16,
    /// Bytes of `path` in use (1..=[`ROUTE_PATH_MAX`]).
    pub path_len: u16,
    /// The host, ASCII lowercase.
    pub host: [u8; ROUTE_HOST_MAX],
    /// The path as sent (undecoded, case-sensitive), starting with `/`.
    pub path: [u8; ROUTE_PATH_MAX],
}

impl Default for RouteKey {
    fn default() -> Self {
        RouteKey {
            host_len: 0,
            path_len: 0,
            host: [0; ROUTE_HOST_MAX],
            path: [0; ROUTE_PATH_MAX],
        }
    }
}

impl RouteKey {
    /// The key for `host` (lowercased here) and `path`, or `None` if either is empty or too long.
    pub fn new(host: &[u8], path: &[u8]) -> Option<Self> {
        if host.is_empty()
            || host.len() > ROUTE_HOST_MAX
            || path.is_empty()
            || path.len() > ROUTE_PATH_MAX
        {
            return None;
        }
        let mut key = RouteKey {
            host_len: host.len() as u16,
            path_len: path.len() as u16,
            ..RouteKey::default()
        };
        for (slot, b) in key.host.iter_mut().zip(host) {
            *slot = b.to_ascii_lowercase();
        }
        key.path[..path.len()].copy_from_slice(path);
        Some(key)
    }
}

/// Value of [`ROUTES_MAP`]: everything the program needs to pick the endpoint, in the one entry it has
/// to look up anyway.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteValue {
    /// The service id (key of [`SERVICES_MAP`]).
    pub service: u32,
    /// [`METHOD_GET`] | [`METHOD_HEAD`]: methods the kernel may route (others go to Tier 3).
    pub methods: u32,
    /// Index of the service's slot 0 in [`SLOTS_MAP`] (inside the service's bank).
    pub slot_base: u32,
    /// Slots in the service's Maglev table (a prime); slot = flow hash % size.
    pub table_size: u32,
}

/// Value of [`SERVICES_MAP`]: one service's Maglev table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Slots in the table (a prime from `rauta_maglev`'s ladder); slot = flow hash % size.
    pub table_size: u32,
    /// Distinct endpoints the slots point at.
    pub endpoints: u32,
    /// Index of the table's slot 0 in [`SLOTS_MAP`] (as in the routes' [`RouteValue::slot_base`]).
    pub slot_base: u32,
}

/// Value of [`SLOTS_MAP`]: an IPv4 endpoint, in network byte order as it goes into a packet (all zero:
/// no endpoint).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// IPv4 address (`u32::from_ne_bytes(octets)`).
    pub addr_be: u32,
    /// TCP port (`u16::from_ne_bytes(port.to_be_bytes())`).
    pub port_be: u16,
    /// Explicit padding; always zero.
    pub _pad: u16,
}

impl Endpoint {
    /// The endpoint `octets:port` (port in host order).
    pub const fn new(octets: [u8; 4], port: u16) -> Self {
        Endpoint {
            addr_be: u32::from_ne_bytes(octets),
            port_be: u16::from_ne_bytes(port.to_be_bytes()),
            _pad: 0,
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

/// Value of [`DECISIONS_MAP`]: what the kernel decided for a flow's first data segment. The splice to
/// the backend (next increment) starts from a hit; today every flow is still handed to Tier 3.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteDecision {
    /// A [`RouteReason`] code.
    pub reason: u32,
    /// The service id on a hit, else 0.
    pub service: u32,
    /// The chosen endpoint on a hit, else all zero.
    pub endpoint: Endpoint,
}

/// Slots of [`ROUTE_COUNTERS_MAP`] (more than there are reasons, so new ones keep the map's size).
pub const ROUTE_COUNTER_SLOTS: u32 = 16;

/// The routing decision for a first data segment, counted once per segment the kernel parses (a
/// retransmitted first segment is decided again). Stable: append only, never renumber.
///
/// These are counted in their own map, beside the packet's [`crate::reason::Reason`]: the packet's
/// action (hand-off today) and the routing decision are two facts about the same segment.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteReason {
    /// GET or HEAD to an exact host and Exact path in the route map, with an endpoint chosen by Maglev.
    Hit = 0,
    /// A method other than GET or HEAD.
    OtherMethod = 1,
    /// The request target is not origin form (does not start with `/`: absolute form, `*`).
    NotOriginForm = 2,
    /// The path (up to `?`) is longer than [`ROUTE_PATH_MAX`].
    PathTooLong = 3,
    /// The segment ends before the request head does (no empty line yet): the rest is in later
    /// segments, which the kernel does not read.
    HeadIncomplete = 4,
    /// The head does not end within [`HEAD_SCAN_MAX`] bytes.
    HeadTooLong = 5,
    /// The request line's version is not `HTTP/1.1` (e.g. HTTP/1.0, which has no Host requirement and
    /// no keep-alive by default).
    NotHttp11 = 6,
    /// No Host header.
    HostMissing = 7,
    /// More than one Host header (Tier 3 answers 400).
    HostDuplicate = 8,
    /// A Host value the kernel does not route: empty, longer than [`ROUTE_HOST_MAX`], an IP-literal in
    /// brackets, or a byte outside `[A-Za-z0-9.-_]` (before the optional `:port`).
    HostUnsupported = 9,
    /// No route for this (host, Exact path): Prefix, regex, hostless, wildcard-host and TLS routes live
    /// in Tier 3 only, as do hosts without routes.
    NoRoute = 10,
    /// The route exists but the service has no table or slot entry (empty, or being replaced).
    NoEndpoint = 11,
    /// Malformed request head: control bytes, a bare LF, an obsolete line fold, a request line
    /// without exactly two spaces.
    ParseError = 12,
    /// A hit the kernel does not splice: bytes follow the head in the segment (a body or a pipelined
    /// request). Tier 3 serves it.
    NotSpliceable = 13,
}

impl RouteReason {
    /// Number of reasons.
    pub const COUNT: usize = 14;

    /// Every reason, in code order.
    pub const ALL: [RouteReason; RouteReason::COUNT] = [
        RouteReason::Hit,
        RouteReason::OtherMethod,
        RouteReason::NotOriginForm,
        RouteReason::PathTooLong,
        RouteReason::HeadIncomplete,
        RouteReason::HeadTooLong,
        RouteReason::NotHttp11,
        RouteReason::HostMissing,
        RouteReason::HostDuplicate,
        RouteReason::HostUnsupported,
        RouteReason::NoRoute,
        RouteReason::NoEndpoint,
        RouteReason::ParseError,
        RouteReason::NotSpliceable,
    ];

    /// The counter-map index of this reason.
    #[inline(always)]
    pub const fn index(self) -> u32 {
        self as u32
    }

    /// The reason with code `code`, if any.
    pub const fn from_code(code: u32) -> Option<RouteReason> {
        if (code as usize) < RouteReason::COUNT {
            Some(RouteReason::ALL[code as usize])
        } else {
            None
        }
    }

    /// A stable snake_case name, usable as a metric label.
    pub const fn name(self) -> &'static str {
        match self {
            RouteReason::Hit => "tier1_route_hit",
            RouteReason::OtherMethod => "route_other_method",
            RouteReason::NotOriginForm => "route_not_origin_form",
            RouteReason::PathTooLong => "route_path_too_long",
            RouteReason::HeadIncomplete => "route_head_incomplete",
            RouteReason::HeadTooLong => "route_head_too_long",
            RouteReason::NotHttp11 => "route_not_http11",
            RouteReason::HostMissing => "route_host_missing",
            RouteReason::HostDuplicate => "route_host_duplicate",
            RouteReason::HostUnsupported => "route_host_unsupported",
            RouteReason::NoRoute => "route_no_route",
            RouteReason::NoEndpoint => "route_no_endpoint",
            RouteReason::ParseError => "route_parse_error",
            RouteReason::NotSpliceable => "route_not_spliceable",
        }
    }
}

const _: () = assert!(core::mem::size_of::<RouteKey>() == 4 + ROUTE_HOST_MAX + ROUTE_PATH_MAX);
const _: () = assert!(core::mem::size_of::<RouteValue>() == 16);
const _: () = assert!(core::mem::size_of::<ServiceEntry>() == 12);
const _: () = assert!(core::mem::size_of::<Endpoint>() == 8);
const _: () = assert!(core::mem::size_of::<RouteDecision>() == 16);
const _: () = assert!(RouteReason::COUNT as u32 <= ROUTE_COUNTER_SLOTS);
// Every index the parser masks with `PENDING_BUF - 1` must stay inside the stored payload buffer.
const _: () = assert!((HEAD_SCAN_MAX as usize) <= crate::maps::PENDING_BUF);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_in_order_and_named_uniquely() {
        for (i, r) in RouteReason::ALL.iter().enumerate() {
            assert_eq!(r.index() as usize, i);
            assert_eq!(RouteReason::from_code(i as u32), Some(*r));
            for other in RouteReason::ALL {
                if other != *r {
                    assert_ne!(other.name(), r.name());
                }
            }
        }
        assert_eq!(RouteReason::from_code(RouteReason::COUNT as u32), None);
    }

    #[test]
    fn keys_lowercase_the_host_zero_the_rest_and_enforce_limits() {
        let a = RouteKey::new(b"Example.COM", b"/A").unwrap();
        let b = RouteKey::new(b"example.com", b"/A").unwrap();
        assert_eq!(a, b);
        assert_eq!((a.host_len, a.path_len), (11, 2));
        assert!(a.host[11..].iter().all(|&x| x == 0));
        assert!(a.path[2..].iter().all(|&x| x == 0));
        assert_ne!(
            a,
            RouteKey::new(b"example.com", b"/a").unwrap(),
            "paths are case-sensitive"
        );
        assert!(RouteKey::new(b"", b"/").is_none());
        assert!(RouteKey::new(&[b'a'; ROUTE_HOST_MAX + 1], b"/").is_none());
        assert!(RouteKey::new(b"a", &[b'/'; ROUTE_PATH_MAX + 1]).is_none());
        assert!(RouteKey::new(&[b'a'; ROUTE_HOST_MAX], &[b'/'; ROUTE_PATH_MAX]).is_some());
    }

    #[test]
    fn endpoint_round_trips_network_order() {
        let e = Endpoint::new([198, 18, 0, 9], 8080);
        assert_eq!((e.octets(), e.port()), ([198, 18, 0, 9], 8080));
        assert_eq!(e.port_be.to_ne_bytes(), 8080u16.to_be_bytes());
    }
}
