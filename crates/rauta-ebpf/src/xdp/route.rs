//! The routing decision for a first data segment: parse the request line and the Host header from the
//! stored payload and look the (host, Exact path) up in the route maps; on a hit pick the endpoint from
//! the service's Maglev slots with the same flow hash Tier 3 uses. The decision is recorded and counted;
//! a hit is returned to the entry point, which starts the splice to the backend (`splice::start`);
//! everything else stays handed off to Tier 3.
//!
//! Verifier notes. Every loop has a constant bound. The payload is read with indexes masked to the
//! buffer (`& (PENDING_BUF - 1)`), which also removes Rust's bounds-check branch. The parser's state
//! between iterations (line start, Host position, counters, mode) lives in the per-CPU scratch map and is
//! accessed with volatile loads and stores: the verifier does not track map memory, so every path
//! through an iteration reaches the next one with the same registers and is pruned there — keeping state
//! in registers would multiply the paths it explores per byte.

use super::scan::{at, ld, st, word};
use rauta_common::{
    flow::{flow_hash_v4, maglev_slot},
    maps::{FlowKey, PENDING_BUF},
    route::{
        Endpoint, HEAD_SCAN_MAX, HOST_SCAN_MAX, METHOD_GET, METHOD_HEAD, ROUTE_HOST_MAX,
        ROUTE_PATH_MAX, RouteDecision, RouteKey, RouteReason,
    },
    swar,
};

use crate::maps::{
    RAUTA_DECISIONS, RAUTA_ROUTES, RAUTA_SCRATCH, RAUTA_SLOTS, RAUTA_VIP, SCRATCH_XDP, count_route,
};

const HOST_MASK: u32 = ROUTE_HOST_MAX as u32 - 1;
const PATH_MASK: u32 = ROUTE_PATH_MAX as u32 - 1;

const _: () = assert!(ROUTE_HOST_MAX.is_power_of_two() && ROUTE_PATH_MAX.is_power_of_two());
// The head is read in words of 8 (`scan::word`): the payload in the scratch entry is 8-aligned, and the
// scan ends on a word boundary.
const _: () = assert!(
    core::mem::offset_of!(crate::maps::Scratch, segment) % 8 == 0
        && core::mem::offset_of!(rauta_common::maps::PendingSegment, data) % 8 == 0
        && HEAD_SCAN_MAX % 8 == 0
);

/// Head scanner modes.
const HEAD_REQUEST_LINE: u32 = 0;
const HEAD_NAME: u32 = 1;
const HEAD_VALUE: u32 = 2;

/// Host value scanner modes.
const MODE_LEADING: u32 = 0;
const MODE_HOST: u32 = 1;
const MODE_PORT: u32 = 2;
const MODE_TRAILING: u32 = 3;

/// The parser's state and the route key it builds, in the per-CPU scratch entry.
#[repr(C)]
pub struct RouteScratch {
    /// The key being built.
    pub key: RouteKey,
    /// The flow whose first segment is in the scratch entry (set by `handoff::replay`).
    pub flow: FlowKey,
    /// Its payload length.
    pub len: u32,
    /// Index of the current header line's first byte.
    line_start: u32,
    /// Index of the request line's LF (0 until seen).
    request_lf: u32,
    /// Spaces seen in the request line.
    spaces: u32,
    /// Host header lines seen.
    hosts: u32,
    /// Index of the first byte after `Host:`.
    host_start: u32,
    /// Index of the CR ending the Host line.
    host_end: u32,
    /// Index after the empty line that ends the head (0 until seen).
    head_end: u32,
    /// A [`RouteReason`] code + 1 when the scan failed, else 0.
    fail: u32,
    /// Head scanner mode: request line, header name, header value.
    head_mode: u32,
    /// Host scanner mode.
    mode: u32,
    /// Host bytes written to the key.
    host_len: u32,
    /// 1 if a header line the splice cannot carry was seen (see `scan_head`).
    unsupported: u32,
    /// The first byte of the current word that `scan_head` steps through (0..=8).
    word_from: u32,
}

/// What was decided: the reason, and on a hit the service id and endpoint.
pub struct Decision {
    pub reason: RouteReason,
    pub service: u32,
    pub endpoint: Endpoint,
}

impl Decision {
    #[inline(always)]
    const fn miss(reason: RouteReason) -> Self {
        Decision {
            reason,
            service: 0,
            endpoint: Endpoint {
                addr_be: 0,
                port_be: 0,
                _pad: 0,
            },
        }
    }
}

/// A `tchar` of RFC 9110 (header field names are tokens).
#[inline(always)]
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[inline(always)]
fn lower(b: u8) -> u8 {
    if b.is_ascii_uppercase() { b | 0x20 } else { b }
}

/// Decides the first data segment `handoff::replay` just stored in the scratch entry, counts and records
/// the decision; on a hit leaves it in the scratch entry's `hit` and returns true. Called once, after the packet's verdict, from the program's entry point: reached from
/// a single place with little live state, the parser is verified once instead of once per path into
/// `replay` (which exceeded the verifier's one million instructions). `first_request`: called by the
/// route program on a connection's first request (a constant at each call site), not by the follow-up
/// program.
#[inline(always)]
pub fn decide_stored(first_request: bool) -> bool {
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) else {
        return false;
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    let flow = scratch.route.flow;
    let len = scratch.route.len;
    if len == 0 || len > PENDING_BUF as u32 {
        return false;
    }
    let decision = decide(
        &scratch.segment.data,
        len,
        &mut scratch.route,
        flow.client_addr.to_ne_bytes(),
        u16::from_be_bytes(flow.client_port.to_ne_bytes()),
    );
    count_route(decision.reason);
    let record = RouteDecision {
        reason: decision.reason as u32,
        service: decision.service,
        endpoint: decision.endpoint,
    };
    // Informational: a failed insert must not cost the client anything. Recorded for a connection's
    // first request only (what `Tiers::decision` reports; a follow-up on a kept-alive splice is decided
    // on every request, and the follow-up program has no verifier budget for the branch), and only
    // when userspace asked for it (`VipConfig::record_decisions`): nothing in the product reads the
    // records, and the LRU insert was ~7 % of a first request.
    if first_request
        && RAUTA_VIP
            .get(0)
            .is_some_and(|vip| vip.record_decisions != 0)
    {
        let _ = RAUTA_DECISIONS.insert(flow, record, 0);
    }
    if decision.reason != RouteReason::Hit {
        return false;
    }
    scratch.hit = Hit {
        flow,
        endpoint: decision.endpoint,
        service: decision.service,
        insert_at: ld(&scratch.route.request_lf) + 1,
        len,
        unsupported_headers: ld(&scratch.route.unsupported),
    };
    true
}

/// A routing hit on a stored first segment: what the splice starts from (left in the scratch entry for
/// the splice program, which runs as a tail call).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Hit {
    /// The client connection.
    pub flow: FlowKey,
    /// The endpoint Maglev chose.
    pub endpoint: Endpoint,
    /// The route's service id.
    pub service: u32,
    /// The offset after the request line's LF.
    pub insert_at: u32,
    /// The stored request's length.
    pub len: u32,
    /// 1 if the head has a header line the splice cannot carry (`Connection`, `Content-*`, ...).
    pub unsupported_headers: u32,
}

/// Decides the request in `data[..len]` (the first segment's payload, `len` ≥ 1) from the client
/// `client_addr:client_port` (port in host order).
#[inline(always)]
pub fn decide(
    data: &[u8; PENDING_BUF],
    len: u32,
    s: &mut RouteScratch,
    client_addr: [u8; 4],
    client_port: u16,
) -> Decision {
    // 1. Method: GET or HEAD, followed by one space.
    if len < 5 {
        return Decision::miss(RouteReason::HeadIncomplete);
    }
    let (method, target) =
        if at(data, 0) == b'G' && at(data, 1) == b'E' && at(data, 2) == b'T' && at(data, 3) == b' '
        {
            (METHOD_GET, 4u32)
        } else if at(data, 0) == b'H'
            && at(data, 1) == b'E'
            && at(data, 2) == b'A'
            && at(data, 3) == b'D'
            && at(data, 4) == b' '
        {
            (METHOD_HEAD, 5u32)
        } else if at(data, 0).is_ascii_uppercase() {
            return Decision::miss(RouteReason::OtherMethod);
        } else {
            return Decision::miss(RouteReason::ParseError);
        };
    // 2. Origin form.
    if target >= len {
        return Decision::miss(RouteReason::HeadIncomplete);
    }
    if at(data, target) != b'/' {
        return Decision::miss(RouteReason::NotOriginForm);
    }

    // 3. The head: lines, the request line's spaces, Host lines, the empty line.
    if let Some(reason) = scan_head(data, len, s) {
        return Decision::miss(reason);
    }

    // 4. The request line: exactly two spaces, version HTTP/1.1.
    let lf = ld(&s.request_lf);
    if ld(&s.spaces) != 2 || lf < target + 11 {
        return Decision::miss(RouteReason::ParseError);
    }
    let v = lf - 9;
    if at(data, v - 1) != b' ' {
        return Decision::miss(RouteReason::ParseError);
    }
    if !(at(data, v) == b'H'
        && at(data, v + 1) == b'T'
        && at(data, v + 2) == b'T'
        && at(data, v + 3) == b'P'
        && at(data, v + 4) == b'/'
        && at(data, v + 5) == b'1'
        && at(data, v + 6) == b'.'
        && at(data, v + 7) == b'1')
    {
        return Decision::miss(RouteReason::NotHttp11);
    }

    // 5. The path, up to the space or `?` (the query is not part of the match, as in Tier 3).
    // SAFETY: zeroing a plain-integer struct in the scratch map (word stores: a `write_bytes` of the
    // 196-byte key was a call of the byte-wise `memset`, ~1,000 instructions per first segment).
    unsafe { crate::zero::zero_in_place(&mut s.key as *mut RouteKey) };
    let mut j = 0u32;
    let mut path_len = ROUTE_PATH_MAX as u32 + 1;
    while j <= ROUTE_PATH_MAX as u32 {
        let b = at(data, target + j);
        if b == b' ' || b == b'?' {
            path_len = j;
            break;
        }
        if j < ROUTE_PATH_MAX as u32 {
            s.key.path[(j & PATH_MASK) as usize] = b;
        }
        j += 1;
    }
    if path_len > ROUTE_PATH_MAX as u32 {
        return Decision::miss(RouteReason::PathTooLong);
    }

    // 6. Exactly one Host header, with a host the kernel routes.
    match ld(&s.hosts) {
        0 => return Decision::miss(RouteReason::HostMissing),
        1 => {}
        _ => return Decision::miss(RouteReason::HostDuplicate),
    }
    if let Some(reason) = scan_host(data, s) {
        return Decision::miss(reason);
    }
    let mut host_len = ld(&s.host_len);
    if host_len > 0 && s.key.host[((host_len - 1) & HOST_MASK) as usize] == b'.' {
        // `example.com.` is `example.com` (as Tier 3's `strip_port` does).
        host_len -= 1;
        s.key.host[(host_len & HOST_MASK) as usize] = 0;
    }
    if host_len == 0 {
        return Decision::miss(RouteReason::HostUnsupported);
    }
    s.key.host_len = host_len as u16;
    s.key.path_len = path_len as u16;

    // 7. Route and Maglev slot. The route value carries the service's table size and slot base, so the
    // slot is one inlined array access: no service lookup, no hashing of a slot key.
    // By reference on purpose: the key stays in the scratch map instead of being copied to the stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let route = RAUTA_ROUTES.get_ptr(&s.key);
    let Some(route) = route else {
        return Decision::miss(RouteReason::NoRoute);
    };
    // SAFETY: a pointer from a successful lookup, read at once.
    let route = unsafe { *route };
    if route.methods & method == 0 {
        return Decision::miss(RouteReason::OtherMethod);
    }
    if route.table_size == 0 {
        return Decision::miss(RouteReason::NoEndpoint);
    }
    let index = route.slot_base.wrapping_add(maglev_slot(
        flow_hash_v4(client_addr, client_port),
        route.table_size,
    ));
    // Out of range: `None`, as for any index past the array.
    let Some(endpoint) = RAUTA_SLOTS.get_ptr(index) else {
        return Decision::miss(RouteReason::NoEndpoint);
    };
    // SAFETY: a pointer into the array, read at once.
    let endpoint = unsafe { *endpoint };
    if endpoint.addr_be == 0 {
        // Never written: not a slot of any table (only a corrupted route value gets here).
        return Decision::miss(RouteReason::NoEndpoint);
    }
    // 8. Only what the splice carries whole: a head alone (its headers are checked by the splice
    // program, which has a verifier budget of its own).
    if ld(&s.head_end) != len {
        return Decision::miss(RouteReason::NotSpliceable);
    }
    Decision {
        reason: RouteReason::Hit,
        service: route.service,
        endpoint,
    }
}

/// Scans the head up to its empty line. Records the request line's LF and spaces and the Host lines;
/// returns a miss reason if the head is malformed, incomplete or too long.
///
/// Word-wise: the head is read 8 bytes at a time, and only the bytes that can change the scanner's
/// state go through [`head_byte`]: from a word's first line end or control byte on (CR, LF, any byte
/// below 0x20, DEL), and every byte of a header name (names are short; their bytes must be checked as
/// tokens). Before that byte, a word in a header value changes nothing and a word of the request line
/// only its count of spaces. The last, partial word of the payload goes byte by byte (bytes past `len`
/// are not the request's).
#[inline(always)]
fn scan_head(data: &[u8; PENDING_BUF], len: u32, s: &mut RouteScratch) -> Option<RouteReason> {
    st(&mut s.line_start, 0);
    st(&mut s.request_lf, 0);
    st(&mut s.spaces, 0);
    st(&mut s.hosts, 0);
    st(&mut s.host_start, 0);
    st(&mut s.host_end, 0);
    st(&mut s.head_end, 0);
    st(&mut s.fail, 0);
    st(&mut s.head_mode, HEAD_REQUEST_LINE);
    st(&mut s.unsupported, 0);
    // The length, too, is read from map memory at each use: a register holding it would be narrowed
    // differently on every path (a word inside the payload or its last, partial one; each byte
    // compared with it), and the verifier could not prune those paths.
    st(&mut s.len, len);
    let mut i = 0u32;
    while i < HEAD_SCAN_MAX {
        if i >= ld(&s.len) {
            break;
        }
        let mode = ld(&s.head_mode);
        let mut from = 0u32;
        if i + 8 <= ld(&s.len) && mode != HEAD_NAME {
            let w = word(data, i);
            let first = swar::first(swar::below(w, 0x20) | swar::below(w ^ DEL_WORD, 1));
            if mode == HEAD_REQUEST_LINE {
                let spaces = swar::count(swar::before(swar::equal(w, b' '), first));
                let n = ld(&s.spaces);
                st(&mut s.spaces, n + spaces);
            }
            from = first;
        }
        // `from` through map memory, as the rest of the state, and the byte index a constant step
        // from the word's start: every path into a byte then has the same registers and the verifier
        // prunes there (an index whose range depends on `from` multiplied the paths past the limit).
        st(&mut s.word_from, from);
        let mut j = 0u32;
        while j < 8 {
            if j >= ld(&s.word_from) && !head_byte(data, i + j, s) {
                break;
            }
            j += 1;
        }
        if j < 8 {
            break;
        }
        i += 8;
    }
    let fail = ld(&s.fail);
    if fail != 0 {
        return RouteReason::from_code(fail - 1);
    }
    if ld(&s.head_end) != 0 {
        return None;
    }
    if ld(&s.len) >= HEAD_SCAN_MAX {
        Some(RouteReason::HeadTooLong)
    } else {
        Some(RouteReason::HeadIncomplete)
    }
}

/// DEL in every byte (a control byte too, but above 0x20).
const DEL_WORD: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// One byte of the head scan, at `i`: its effect on the scanner's state. False when the scan ends here
/// (the payload's end, the head's empty line, or a failure recorded in `fail`).
#[inline(always)]
fn head_byte(data: &[u8; PENDING_BUF], i: u32, s: &mut RouteScratch) -> bool {
    if i >= ld(&s.len) {
        return false;
    }
    let b = at(data, i);
    if b == b'\n' {
        let start = ld(&s.line_start);
        if i == 0 || at(data, i - 1) != b'\r' {
            st(&mut s.fail, RouteReason::ParseError as u32 + 1);
            return false;
        }
        if ld(&s.request_lf) == 0 {
            st(&mut s.request_lf, i);
        } else if i == start + 1 {
            st(&mut s.head_end, i + 1);
            return false;
        } else {
            if ld(&s.head_mode) != HEAD_VALUE {
                // A header line without `name:` (or an obsolete fold, which starts with a space).
                st(&mut s.fail, RouteReason::ParseError as u32 + 1);
                return false;
            }
            if lower(at(data, start)) == b'h'
                && lower(at(data, start + 1)) == b'o'
                && lower(at(data, start + 2)) == b's'
                && lower(at(data, start + 3)) == b't'
                && at(data, start + 4) == b':'
            {
                let n = ld(&s.hosts);
                st(&mut s.hosts, n + 1);
                st(&mut s.host_start, start + 5);
                st(&mut s.host_end, i - 1);
            }
            // Headers that change the framing or the connection: the splice inserts its own
            // `Connection:close` and carries no body, so such requests go to Tier 3. Compared by their
            // first four letters, lowercased (`conn`, `cont`ent-*, `tran`sfer-encoding, `upgr`ade,
            // `expe`ct), here in the one pass over the head (a second pass per byte cost more than
            // the parse itself). `| 0x20` lowercases letters and maps no other byte onto one.
            let word = u32::from(at(data, start) | 0x20)
                | u32::from(at(data, start + 1) | 0x20) << 8
                | u32::from(at(data, start + 2) | 0x20) << 16
                | u32::from(at(data, start + 3) | 0x20) << 24;
            if word == u32::from_le_bytes(*b"conn")
                || word == u32::from_le_bytes(*b"cont")
                || word == u32::from_le_bytes(*b"tran")
                || word == u32::from_le_bytes(*b"upgr")
                || word == u32::from_le_bytes(*b"expe")
            {
                st(&mut s.unsupported, 1);
            }
        }
        st(&mut s.head_mode, HEAD_NAME);
        st(&mut s.line_start, i + 1);
    } else if b == b'\r' {
        if i + 1 < ld(&s.len) && at(data, i + 1) != b'\n' {
            st(&mut s.fail, RouteReason::ParseError as u32 + 1);
            return false;
        }
    } else if (b < 0x20 && b != b'\t') || b == 0x7f {
        st(&mut s.fail, RouteReason::ParseError as u32 + 1);
        return false;
    } else {
        let mode = ld(&s.head_mode);
        if mode == HEAD_REQUEST_LINE {
            if b == b' ' {
                let n = ld(&s.spaces);
                st(&mut s.spaces, n + 1);
            }
        } else if mode == HEAD_NAME {
            if b == b':' && i != ld(&s.line_start) {
                st(&mut s.head_mode, HEAD_VALUE);
            } else if !tchar(b) {
                // Empty name, whitespace before the colon, a fold: Tier 3 rejects or decides.
                st(&mut s.fail, RouteReason::ParseError as u32 + 1);
                return false;
            }
        }
    }
    true
}

/// Copies the Host value (between `host_start` and `host_end`) into the key, lowercased, without
/// surrounding whitespace and without the `:port`. Records its length in `host_len`.
#[inline(always)]
fn scan_host(data: &[u8; PENDING_BUF], s: &mut RouteScratch) -> Option<RouteReason> {
    let start = ld(&s.host_start);
    let end = ld(&s.host_end);
    st(&mut s.mode, MODE_LEADING);
    st(&mut s.host_len, 0);
    st(&mut s.fail, 0);
    let mut j = 0u32;
    while j < HOST_SCAN_MAX {
        let p = start + j;
        if p >= end {
            break;
        }
        let b = at(data, p);
        let ws = b == b' ' || b == b'\t';
        let mut mode = ld(&s.mode);
        if mode == MODE_LEADING && !ws {
            mode = MODE_HOST;
            st(&mut s.mode, MODE_HOST);
        }
        if mode == MODE_HOST {
            if b == b':' {
                st(&mut s.mode, MODE_PORT);
            } else if ws {
                st(&mut s.mode, MODE_TRAILING);
            } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_' {
                let n = ld(&s.host_len);
                if n >= ROUTE_HOST_MAX as u32 {
                    st(&mut s.fail, 1);
                    break;
                }
                s.key.host[(n & HOST_MASK) as usize] = lower(b);
                st(&mut s.host_len, n + 1);
            } else {
                st(&mut s.fail, 1);
                break;
            }
        } else if mode == MODE_PORT {
            if ws {
                st(&mut s.mode, MODE_TRAILING);
            } else if !b.is_ascii_digit() {
                st(&mut s.fail, 1);
                break;
            }
        } else if mode == MODE_TRAILING && !ws {
            st(&mut s.fail, 1);
            break;
        }
        j += 1;
    }
    if ld(&s.fail) != 0 || j >= HOST_SCAN_MAX {
        return Some(RouteReason::HostUnsupported);
    }
    None
}
