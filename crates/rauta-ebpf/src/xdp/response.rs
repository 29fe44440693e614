//! Response framing on a kept-alive splice: where each of the backend's responses ends, so that a
//! follow-up request routed elsewhere moves only between two responses (`BackendLeg::between_responses`).
//!
//! Runs as its own program (`rauta_xdp_response`, a tail call) on the backend segments in which a
//! response head starts, which `splice::backend_segment` finds by one comparison per segment
//! (`BackendLeg::response_next`). It reads the status code and the framing headers of a head that lies
//! whole in the segment and moves `response_next` to the response's end: head + `Content-Length`, or the
//! head alone for 204, 304 and the response to a HEAD. Anything else (chunked, no length, 1xx, a head
//! past the segment, a second response starting in the same segment) is `FRAMING_LOST` for the rest of
//! the splice. The entry program then translates the segment as any other (`Resume`).
//!
//! The scanner keeps its state in the per-CPU scratch entry with volatile accesses, as the request
//! parser does (`route`): every path through a byte reaches the next one with the same registers.

use super::scan::{at, ld, st};
use aya_ebpf::{helpers::generated::bpf_xdp_load_bytes, programs::XdpContext};
use rauta_common::{
    maps::{PENDING_BUF, STATUS_CLASS_UNKNOWN, status_class_slot},
    reason::Reason,
    splice::{FRAMING_KNOWN, FRAMING_LOST},
};

use super::{RESUME_RESPONSE, Resume};
use crate::maps::{RAUTA_SCRATCH, RAUTA_SPLICES, SCRATCH_XDP};

/// The longest response head the kernel frames (bytes from the status line to the empty line).
pub const RESPONSE_HEAD_MAX: u32 = 1024;
const _: () = assert!(RESPONSE_HEAD_MAX as usize <= PENDING_BUF);
const MASK: u32 = PENDING_BUF as u32 - 1;
/// Digits of a `Content-Length` the kernel reads (beyond: lost, a 10^15-byte body is not kept alive).
const LENGTH_DIGITS_MAX: u32 = 15;

/// The scanner's state, in the per-CPU scratch entry.
#[repr(C)]
pub struct ResponseScratch {
    line_start: u32,
    head_end: u32,
    length_start: u32,
    length_end: u32,
    lengths: u32,
    encodings: u32,
    fail: u32,
}

/// How a response head frames its body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The response is `head` bytes of head and `body` bytes of body.
    Known { head: u32, body: u32 },
    /// Not something the kernel follows.
    Lost,
}

/// Reads the head at the start of `data[..len]`. `head_request`: the request was a HEAD.
#[inline(always)]
pub fn frame(
    data: &[u8; PENDING_BUF],
    len: u32,
    head_request: bool,
    s: &mut ResponseScratch,
) -> Framing {
    // "HTTP/1.x NNN"
    if len < 13
        || !(at(data, 0) == b'H'
            && at(data, 1) == b'T'
            && at(data, 2) == b'T'
            && at(data, 3) == b'P'
            && at(data, 4) == b'/'
            && at(data, 5) == b'1'
            && at(data, 6) == b'.'
            && at(data, 8) == b' ')
    {
        return Framing::Lost;
    }
    let (a, b, c) = (at(data, 9), at(data, 10), at(data, 11));
    if !(a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit()) || a == b'1' {
        // 1xx: interim responses (100 Continue, 101 Switching Protocols) are not followed.
        return Framing::Lost;
    }
    let no_body = head_request
        || (a == b'2' && b == b'0' && c == b'4')
        || (a == b'3' && b == b'0' && c == b'4');

    st(&mut s.line_start, 0);
    st(&mut s.head_end, 0);
    st(&mut s.lengths, 0);
    st(&mut s.encodings, 0);
    st(&mut s.fail, 0);
    let mut i = 12u32;
    while i < RESPONSE_HEAD_MAX {
        if i >= len {
            break;
        }
        if at(data, i) == b'\n' {
            let start = ld(&s.line_start);
            if start != 0 && i == start + 1 {
                st(&mut s.head_end, i + 1);
                break;
            }
            if start != 0 {
                // `content-length:` / `transfer-encoding:`, lowercased (`| 0x20` maps no other byte
                // onto a letter).
                let word = u32::from(at(data, start) | 0x20)
                    | u32::from(at(data, start + 1) | 0x20) << 8
                    | u32::from(at(data, start + 2) | 0x20) << 16
                    | u32::from(at(data, start + 3) | 0x20) << 24;
                if word == u32::from_le_bytes(*b"cont")
                    && at(data, start + 4) | 0x20 == b'e'
                    && at(data, start + 5) | 0x20 == b'n'
                    && at(data, start + 6) | 0x20 == b't'
                    && at(data, start + 7) == b'-'
                    && at(data, start + 8) | 0x20 == b'l'
                    && at(data, start + 9) | 0x20 == b'e'
                    && at(data, start + 10) | 0x20 == b'n'
                    && at(data, start + 11) | 0x20 == b'g'
                    && at(data, start + 12) | 0x20 == b't'
                    && at(data, start + 13) | 0x20 == b'h'
                    && at(data, start + 14) == b':'
                {
                    let n = ld(&s.lengths);
                    st(&mut s.lengths, n + 1);
                    st(&mut s.length_start, start + 15);
                    st(&mut s.length_end, i);
                } else if word == u32::from_le_bytes(*b"tran") && at(data, start + 8) == b'-' {
                    let n = ld(&s.encodings);
                    st(&mut s.encodings, n + 1);
                }
            }
            st(&mut s.line_start, i + 1);
        }
        i += 1;
    }
    let head = ld(&s.head_end);
    if head == 0 || ld(&s.encodings) != 0 {
        return Framing::Lost;
    }
    if no_body {
        return Framing::Known { head, body: 0 };
    }
    if ld(&s.lengths) != 1 {
        return Framing::Lost;
    }
    // The value: optional whitespace, digits, optional whitespace, CR.
    let end = ld(&s.length_end);
    let mut j = ld(&s.length_start);
    let mut k = 0u32;
    let mut body = 0u64;
    let mut digits = 0u32;
    let mut fail = false;
    while k < LENGTH_DIGITS_MAX + 8 {
        if j >= end {
            break;
        }
        let d = at(data, j);
        if d.is_ascii_digit() {
            if digits >= LENGTH_DIGITS_MAX {
                fail = true;
                break;
            }
            body = body * 10 + u64::from(d - b'0');
            digits += 1;
        } else if !(d == b' ' || d == b'\t' || d == b'\r') {
            fail = true;
            break;
        }
        j += 1;
        k += 1;
    }
    if fail || digits == 0 || j < end || body >= 1 << 31 {
        // Beyond 2 GiB the sequence arithmetic would wrap: not followed.
        return Framing::Lost;
    }
    Framing::Known {
        head,
        body: body as u32,
    }
}

/// The response program's work: frame the head described by this CPU's [`Resume`] and record it in
/// the backend leg. Returns the reason to count.
#[inline(always)]
pub fn record(ctx: &XdpContext) -> Reason {
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) else {
        return Reason::InternalErrorPass;
    };
    // SAFETY: this CPU's scratch entry, valid for this run (a tail call keeps the CPU).
    let scratch = unsafe { &mut *scratch };
    let r: Resume = scratch.resume;
    if r.kind != RESUME_RESPONSE || r.offset >= r.payload_len {
        return Reason::InternalErrorPass;
    }
    let Some(splice) = RAUTA_SPLICES.get_ptr_mut(&r.flow) else {
        return Reason::InternalErrorPass;
    };
    // SAFETY: a pointer from a successful lookup, valid for this run (RCU).
    let s = unsafe { &mut *splice };
    // The framing fields live in the backend leg (where every backend segment finds them).
    let Some(leg) = crate::maps::leg_of(s) else {
        return Reason::InternalErrorPass;
    };
    // SAFETY: a slot pointer from a successful lookup (array values live as long as the map).
    let leg = unsafe { &mut *leg };
    let available = r.payload_len - r.offset;
    let want = if available < RESPONSE_HEAD_MAX {
        available
    } else {
        RESPONSE_HEAD_MAX
    };
    // Restate 1..=PENDING_BUF for the verifier where the helper is called.
    let n = ((core::hint::black_box(want).wrapping_sub(1)) & MASK) + 1;
    // SAFETY: the buffer holds PENDING_BUF bytes and 1 <= n <= PENDING_BUF.
    let loaded = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            r.payload_at + r.offset,
            scratch.segment.data.as_mut_ptr().cast(),
            n,
        )
    };
    // The response's status class, counted once per head read (a status line needs 13 bytes).
    let class = if loaded == 0 && n >= 13 {
        // SAFETY: the buffer holds PENDING_BUF >= 12 bytes; `[u8; 12]` has alignment 1.
        status_class_slot(unsafe { &*scratch.segment.data.as_ptr().cast::<[u8; 12]>() })
    } else {
        STATUS_CLASS_UNKNOWN
    };
    crate::maps::count_status(class);
    let framing = if loaded != 0 {
        Framing::Lost
    } else {
        frame(
            &scratch.segment.data,
            n,
            s.head_request != 0,
            &mut scratch.response,
        )
    };
    match framing {
        Framing::Known { head, body } => {
            let end = leg.response_next.wrapping_add(head).wrapping_add(body);
            // Another response starting in the same segment (pipelined responses) is not followed.
            let segment_end = leg.response_next.wrapping_add(available);
            if segment_end.wrapping_sub(end) != 0 && segment_end.wrapping_sub(end) < 1 << 31 {
                leg.framing = FRAMING_LOST;
                s.unframed = 1;
                return Reason::SpliceResponseUnframed;
            }
            leg.response_next = end;
            leg.responses = leg.responses.wrapping_add(1);
            leg.framing = FRAMING_KNOWN;
            Reason::SpliceResponseFramed
        }
        Framing::Lost => {
            leg.framing = FRAMING_LOST;
            s.unframed = 1;
            Reason::SpliceResponseUnframed
        }
    }
}
