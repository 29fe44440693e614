//! Measurement programs, never loaded in production: each does ONE piece of what the first GET of a
//! spliced connection pays (a helper, a map operation, the minimal parse), on a realistic packet, so
//! that `BPF_PROG_RUN` times it in isolation (`tests/kernel_pieces.rs` in rauta-dataplane subtracts
//! `piece_pass`, the harness, from each). Issue 6 asks ≤ 300 ns for the whole first GET; this object
//! says which pieces alone already cost more on a given machine. See docs/benchmarks.md section 5,
//! "Session 10: each piece of the first GET in isolation".
//!
//! Every program returns `XDP_PASS` when its piece did its work and `XDP_DROP` otherwise (the test
//! asserts that, so a timing never comes from a short cut such as a failed bounds check), except
//! `piece_cookie_gen`, which returns the cookie it generated (the test builds the client's ACK with it).
#![no_std]
#![no_main]

#[allow(dead_code)]
#[path = "parse.rs"]
mod parse;
#[allow(dead_code)]
#[path = "zero.rs"]
mod zero;

use aya_ebpf::{
    bindings::{
        BPF_F_CURRENT_NETNS, BPF_FIB_LOOKUP_SRC, bpf_fib_lookup, bpf_sock_tuple, iphdr, tcphdr,
        xdp_action,
    },
    helpers::generated::{
        bpf_csum_diff, bpf_fib_lookup as fib_lookup, bpf_sk_release, bpf_skc_lookup_tcp,
        bpf_tcp_raw_check_syncookie_ipv4, bpf_tcp_raw_gen_syncookie_ipv4, bpf_xdp_load_bytes,
    },
    macros::{map, xdp},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray},
    programs::XdpContext,
};
use rauta_common::{
    maps::FlowKey,
    route::{ROUTE_ENTRIES, RouteKey, RouteValue},
    splice::SPLICE_ENTRIES,
};

use parse::{ETH_LEN, IPV4_LEN, Ipv4Hdr, TCP_LEN, TcpHdr, ptr_at};

/// The size of a splice's state (`rauta_common::splice::SpliceState`), the value the first GET inserts.
const STATE_WORDS: usize = 18;
const _: () = assert!(STATE_WORDS * 8 == core::mem::size_of::<rauta_common::splice::SpliceState>());

/// Where the payload of a segment without TCP options starts.
const PAYLOAD_AT: usize = ETH_LEN + IPV4_LEN + TCP_LEN;
/// The payload bytes `piece_load_sum` copies and sums (a typical curl GET; a multiple of 2 for the sum,
/// rounded up to whole words in the buffer).
const LOAD_LEN: u32 = 70;
/// The longest request head the minimal parse looks at.
const PARSE_MAX: u32 = 128;
/// `AF_INET`.
const AF_INET: u8 = 2;

/// Like `RAUTA_SPLICES`: LRU hash, 4-tuple → 144-byte state, 65,536 entries.
#[map]
static PIECE_LRU: LruHashMap<FlowKey, [u64; STATE_WORDS]> =
    LruHashMap::with_max_entries(SPLICE_ENTRIES, 0);

/// Like `RAUTA_ROUTES`: hash map, 196-byte (host, path) key; the test writes its routes.
#[map]
static PIECE_ROUTES: HashMap<RouteKey, RouteValue> = HashMap::with_max_entries(ROUTE_ENTRIES, 0);

/// Like `RAUTA_NAT` / `RAUTA_REQUESTS`: an array of 144-byte slots indexed by a port.
#[map]
static PIECE_SLOTS: Array<[u64; STATE_WORDS]> = Array::with_max_entries(65536, 0);

/// Per-CPU scratch: the state inserted into `PIECE_LRU`, the route key, the payload copy and the
/// parser's positions (kept out of registers, as `xdp::scan` does, so that the verifier prunes).
#[map]
static PIECE_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Slot 0: `piece_pass`, the target of `piece_tail_call` (written by the test).
#[map]
static PIECE_PROGS: ProgramArray = ProgramArray::with_max_entries(1, 0);

#[repr(C)]
struct Scratch {
    state: [u64; STATE_WORDS],
    key: RouteKey,
    payload: [u8; 72],
    path_end: u32,
    host_at: u32,
    host_end: u32,
    _pad: u32,
}

const PASS: u32 = xdp_action::XDP_PASS;
const DROP: u32 = xdp_action::XDP_DROP;

/// The harness: returns at once. Every other piece's cost is its time minus this one's.
#[xdp]
pub fn piece_pass(_ctx: XdpContext) -> u32 {
    PASS
}

/// Bounds checks of the Ethernet, IPv4 and TCP headers and a look at the protocol and flags: the least
/// any program on this path does before its first helper.
#[xdp]
pub fn piece_headers(ctx: XdpContext) -> u32 {
    let Some((ip, tcp)) = headers(&ctx) else {
        return DROP;
    };
    // SAFETY: both pointers were bounds-checked by `ptr_at`.
    let (proto, flags) = unsafe { ((*ip).protocol, (*tcp).flags) };
    if proto == 6 && flags & 0x10 != 0 {
        PASS
    } else {
        DROP
    }
}

/// `bpf_tcp_raw_gen_syncookie_ipv4` on a SYN (a Linux SYN: 20 bytes of options), as the SYN-ACK and the
/// first GET's one-generation check do. Returns the cookie.
#[xdp]
pub fn piece_cookie_gen(ctx: XdpContext) -> u32 {
    let (Some(ip), Some(tcp)) = (
        ptr_at::<Ipv4Hdr>(&ctx, ETH_LEN),
        ptr_at::<[u8; 40]>(&ctx, ETH_LEN + IPV4_LEN),
    ) else {
        return DROP;
    };
    // SAFETY: the whole 40-byte header is inside the packet (checked); the helper checks doff itself.
    let cookie =
        unsafe { bpf_tcp_raw_gen_syncookie_ipv4(ip.cast::<iphdr>(), tcp.cast::<tcphdr>(), 40) };
    if cookie < 0 { DROP } else { cookie as u32 }
}

/// `bpf_tcp_raw_check_syncookie_ipv4` on the client's ACK (the kernel's own check: all four MSS
/// values of two minutes).
#[xdp]
pub fn piece_cookie_check(ctx: XdpContext) -> u32 {
    let Some((ip, tcp)) = headers(&ctx) else {
        return DROP;
    };
    // SAFETY: both headers are inside the packet (checked by `ptr_at`).
    let rc = unsafe { bpf_tcp_raw_check_syncookie_ipv4(ip.cast::<iphdr>(), tcp.cast::<tcphdr>()) };
    if rc == 0 { PASS } else { DROP }
}

/// `bpf_skc_lookup_tcp` of the segment's 4-tuple, and the release of what it found: PASS if it found a
/// socket (the test's listener on the VIP's port), DROP if not (the miss row uses another port).
#[xdp]
pub fn piece_sk_lookup(ctx: XdpContext) -> u32 {
    let Some((ip, tcp)) = headers(&ctx) else {
        return DROP;
    };
    // SAFETY: an all-zero tuple is a valid value of this plain C union.
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    // SAFETY: the headers are inside the packet; writing the IPv4 member of the union.
    unsafe {
        let v4 = &mut tuple.__bindgen_anon_1.ipv4;
        v4.saddr = u32::from_ne_bytes((*ip).saddr);
        v4.daddr = u32::from_ne_bytes((*ip).daddr);
        v4.sport = u16::from_ne_bytes((*tcp).source);
        v4.dport = u16::from_ne_bytes((*tcp).dest);
    }
    // SAFETY: a stack tuple of the declared size (the IPv4 member, 12 bytes); a non-null result is
    // released below.
    let sk = unsafe {
        bpf_skc_lookup_tcp(
            ctx.ctx.cast(),
            &mut tuple,
            12,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if sk.is_null() {
        return DROP;
    }
    // SAFETY: releasing the reference the lookup took.
    unsafe { bpf_sk_release(sk.cast()) };
    PASS
}

/// A lookup in the LRU hash by the segment's 4-tuple: PASS on a miss (what a first GET finds).
#[xdp]
pub fn piece_lru_lookup(ctx: XdpContext) -> u32 {
    let Some(key) = flow_key(&ctx) else {
        return DROP;
    };
    match PIECE_LRU.get_ptr(&key) {
        None => PASS,
        Some(_) => DROP,
    }
}

/// An insert of a 144-byte value into the LRU hash under the segment's 4-tuple (a fresh key each run,
/// as a first GET's splice state).
#[xdp]
pub fn piece_lru_insert(ctx: XdpContext) -> u32 {
    let Some(key) = flow_key(&ctx) else {
        return DROP;
    };
    let Some(scratch) = PIECE_SCRATCH.get_ptr_mut(0) else {
        return DROP;
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let state = unsafe { &mut (*scratch).state };
    // Something of the key in the value, as a splice state holds its tuple.
    state[0] = u64::from(key.client_port);
    match PIECE_LRU.insert(&key, state, 0) {
        Ok(()) => PASS,
        Err(_) => DROP,
    }
}

/// The delete of that entry (what the connection's close does).
#[xdp]
pub fn piece_lru_delete(ctx: XdpContext) -> u32 {
    let Some(key) = flow_key(&ctx) else {
        return DROP;
    };
    match PIECE_LRU.remove(&key) {
        Ok(()) => PASS,
        Err(_) => DROP,
    }
}

/// An array lookup indexed by the client's port, one word of the slot read.
#[xdp]
pub fn piece_array_lookup(ctx: XdpContext) -> u32 {
    let Some((_, tcp)) = headers(&ctx) else {
        return DROP;
    };
    // SAFETY: the TCP header is inside the packet.
    let port = u16::from_be_bytes(unsafe { (*tcp).source });
    match PIECE_SLOTS.get_ptr(u32::from(port)) {
        // SAFETY: a map value pointer, valid as long as the map.
        Some(slot) if unsafe { (*slot)[0] } == 0 => PASS,
        _ => DROP,
    }
}

/// A `RAUTA_ROUTES`-style lookup: the 196-byte key (host and path lengths and bytes; the rest of the
/// scratch key is zero and stays so) filled from the request at its known offsets, then looked up
/// (jhash over 196 bytes, a compare of as many). PASS on a hit.
#[xdp]
pub fn piece_route_lookup(ctx: XdpContext) -> u32 {
    // "GET /whoami HTTP/1.1\r\nHost: shop.example\r\n": the path at 4..11, the host at 28..40.
    let (Some(head), Some(scratch)) = (
        ptr_at::<[u8; 40]>(&ctx, PAYLOAD_AT),
        PIECE_SCRATCH.get_ptr_mut(0),
    ) else {
        return DROP;
    };
    // SAFETY: the 40 bytes are inside the packet; this CPU's scratch entry, valid for this run.
    let (head, key) = unsafe { (&*head, &mut (*scratch).key) };
    key.host_len = 12;
    key.path_len = 7;
    let mut i = 0;
    while i < 12 {
        key.host[i] = head[28 + i] | 0x20;
        i += 1;
    }
    let mut i = 0;
    while i < 7 {
        key.path[i] = head[4 + i];
        i += 1;
    }
    // SAFETY: a plain read of the value the map returns.
    match unsafe { PIECE_ROUTES.get(key) } {
        Some(route) if route.service != 0 => PASS,
        _ => DROP,
    }
}

/// `bpf_fib_lookup` from the ingress interface to 198.18.1.2 (a backend behind a permanent neighbour
/// in the test's namespace), as a first GET without the FIB cache does.
#[xdp]
pub fn piece_fib_lookup(ctx: XdpContext) -> u32 {
    let mut fib = core::mem::MaybeUninit::<bpf_fib_lookup>::uninit();
    // SAFETY: as `xdp::splice::route_to`: zeroed in place with word stores; all zero is valid.
    let fib = unsafe {
        zero::zero_in_place(fib.as_mut_ptr());
        fib.assume_init_mut()
    };
    fib.family = AF_INET;
    fib.l4_protocol = 6;
    fib.__bindgen_anon_1.tot_len = 60;
    // SAFETY: reading the context's ingress interface.
    fib.ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    fib.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes([198, 18, 1, 2]);
    // SAFETY: helper call with a stack struct of the size passed.
    let rc = unsafe {
        fib_lookup(
            ctx.ctx.cast(),
            &mut *fib,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            BPF_FIB_LOOKUP_SRC,
        )
    };
    if rc == 0 { PASS } else { DROP }
}

/// `bpf_xdp_load_bytes` of the 70-byte request into the scratch entry and one `bpf_csum_diff` over it
/// (what capturing the first GET and summing its payload cost).
#[xdp]
pub fn piece_load_sum(ctx: XdpContext) -> u32 {
    let Some(scratch) = PIECE_SCRATCH.get_ptr_mut(0) else {
        return DROP;
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let buf = unsafe { &mut (*scratch).payload };
    // SAFETY: `buf` holds 72 bytes; the helper writes LOAD_LEN of them or fails.
    let rc = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            PAYLOAD_AT as u32,
            buf.as_mut_ptr().cast(),
            LOAD_LEN,
        )
    };
    if rc != 0 {
        return DROP;
    }
    // SAFETY: the helper reads 72 bytes of `buf` (whole words; the last two are the previous run's, as
    // the production code zeroes them first: a store, not measured here).
    let sum = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, buf.as_mut_ptr().cast(), 72, 0) };
    if sum > 0 { PASS } else { DROP }
}

/// A tail call to `piece_pass` (what each of the first GET's steps costs to enter).
#[xdp]
pub fn piece_tail_call(ctx: XdpContext) -> u32 {
    // SAFETY: a tail call with this program's own context; it returns only if the slot is empty.
    unsafe { PIECE_PROGS.tail_call(&ctx, 0) };
    DROP
}

/// The least a router must parse of a 70-byte GET, byte by byte in the packet: the method, the path up
/// to its space, the version, and the Host header's value (found at a line start, case-insensitively).
/// No header checks, no lowercasing of the host: the production parser does both. PASS if the request
/// line is valid and a Host was found.
#[xdp]
pub fn piece_parse(ctx: XdpContext) -> u32 {
    let (Some(scratch), Some(method)) = (
        PIECE_SCRATCH.get_ptr_mut(0),
        ptr_at::<[u8; 4]>(&ctx, PAYLOAD_AT),
    ) else {
        return DROP;
    };
    // SAFETY: this CPU's scratch entry, valid for this run; the 4 bytes are inside the packet.
    let (s, method) = unsafe { (&mut *scratch, *method) };
    if method != *b"GET " {
        return DROP;
    }
    let data = ctx.data();
    let end = ctx.data_end();
    // The path: from 4 to its space.
    st(&mut s.path_end, 0);
    let mut i = 5;
    while i < PARSE_MAX {
        let p = data + PAYLOAD_AT + i as usize;
        if p + 1 > end {
            break;
        }
        // SAFETY: bounds checked above.
        let b = unsafe { *(p as *const u8) };
        if b == b' ' {
            st(&mut s.path_end, i);
            break;
        }
        if b < 0x21 {
            break;
        }
        i += 1;
    }
    let path_end = ld(&s.path_end) & (PARSE_MAX - 1);
    if path_end == 0 {
        return DROP;
    }
    // The version and the request line's end.
    let version = data + PAYLOAD_AT + path_end as usize + 1;
    if version + 10 > end {
        return DROP;
    }
    // SAFETY: the 10 bytes are inside the packet (checked above).
    if unsafe { *(version as *const [u8; 10]) } != *b"HTTP/1.1\r\n" {
        return DROP;
    }
    // The Host header: the first line that starts with "host:" (a line starts after a '\n'; the
    // request line's own ends the 10 bytes checked above). One pass, one bounds check per byte.
    st(&mut s.host_at, 0);
    let first = path_end + 11;
    let mut k = 0;
    while k < PARSE_MAX {
        let at = (first + k) & (PARSE_MAX - 1);
        let p = data + PAYLOAD_AT + at as usize;
        if p + 5 > end {
            break;
        }
        // SAFETY: bounds checked above; `p - 1` is inside the request line (at >= 11).
        let (before, name) = unsafe { (*((p - 1) as *const u8), *(p as *const [u8; 5])) };
        if before == b'\n' {
            if name[0] == b'\r' {
                break; // the head's end
            }
            if name[0] | 0x20 == b'h'
                && name[1] | 0x20 == b'o'
                && name[2] | 0x20 == b's'
                && name[3] | 0x20 == b't'
                && name[4] == b':'
            {
                st(&mut s.host_at, at + 5);
                break;
            }
        }
        k += 1;
    }
    let host_at = ld(&s.host_at) & (PARSE_MAX - 1);
    if host_at == 0 {
        return DROP;
    }
    // The host's value: past spaces, up to '\r'.
    st(&mut s.host_end, 0);
    let mut k = 0;
    while k < 64 {
        let q = data + PAYLOAD_AT + ((host_at + k) & (PARSE_MAX - 1)) as usize;
        if q + 1 > end {
            break;
        }
        // SAFETY: bounds checked above.
        if unsafe { *(q as *const u8) } == b'\r' {
            st(&mut s.host_end, host_at + k);
            break;
        }
        k += 1;
    }
    if ld(&s.host_end) > host_at + 1 {
        PASS
    } else {
        DROP
    }
}

/// The segment's IPv4 and TCP headers, bounds-checked.
#[inline(always)]
fn headers(ctx: &XdpContext) -> Option<(*mut Ipv4Hdr, *mut TcpHdr)> {
    Some((
        ptr_at::<Ipv4Hdr>(ctx, ETH_LEN)?,
        ptr_at::<TcpHdr>(ctx, ETH_LEN + IPV4_LEN)?,
    ))
}

/// The segment's 4-tuple as `RAUTA_SPLICES` keys it.
#[inline(always)]
fn flow_key(ctx: &XdpContext) -> Option<FlowKey> {
    let (ip, tcp) = headers(ctx)?;
    // SAFETY: both headers are inside the packet (checked by `ptr_at`).
    unsafe {
        Some(FlowKey {
            client_addr: u32::from_ne_bytes((*ip).saddr),
            vip_addr: u32::from_ne_bytes((*ip).daddr),
            client_port: u16::from_ne_bytes((*tcp).source),
            vip_port: u16::from_ne_bytes((*tcp).dest),
        })
    }
}

/// Loads a parser position (volatile: an unknown value to the verifier, which then prunes the loop's
/// paths instead of following one per byte position).
#[inline(always)]
fn ld(p: &u32) -> u32 {
    // SAFETY: a valid reference.
    unsafe { core::ptr::read_volatile(p) }
}

/// Stores a parser position.
#[inline(always)]
fn st(p: &mut u32, v: u32) {
    // SAFETY: a valid reference.
    unsafe { core::ptr::write_volatile(p, v) }
}

/// The helpers above are GPL-only in the kernel.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
