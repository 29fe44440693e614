//! Helpers of the byte scanners (`route`'s request parser, `response`'s head framing) that keep their
//! state in the per-CPU scratch entry: volatile loads and stores keep that state out of registers, so
//! that every path through one byte reaches the next with the same registers and the verifier prunes
//! there (state in registers multiplies the paths it explores per byte).

use rauta_common::maps::PENDING_BUF;

const MASK: u32 = PENDING_BUF as u32 - 1;
const _: () = assert!(PENDING_BUF.is_power_of_two());

/// Loads a scanner state word.
#[inline(always)]
pub fn ld(p: &u32) -> u32 {
    // SAFETY: a valid reference; volatile only to keep the value out of registers (module docs).
    unsafe { core::ptr::read_volatile(p) }
}

/// Stores a scanner state word.
#[inline(always)]
pub fn st(p: &mut u32, v: u32) {
    // SAFETY: as `ld`.
    unsafe { core::ptr::write_volatile(p, v) }
}

/// The byte at `i` of a stored payload, the index masked to the buffer (which also removes Rust's
/// bounds-check branch).
#[inline(always)]
pub fn at(data: &[u8; PENDING_BUF], i: u32) -> u8 {
    data[(i & MASK) as usize]
}

/// The 8 bytes at `i` (a multiple of 8) of a stored payload as one little-endian word: byte `i + n` is
/// bits `8n..8n + 8`. `data` must be 8-aligned (the scratch entry's payload is: `route` asserts it).
#[inline(always)]
pub fn word(data: &[u8; PENDING_BUF], i: u32) -> u64 {
    let at = (i & MASK & !7) as usize;
    // SAFETY: `at + 8 <= PENDING_BUF` (masked to a multiple of 8 inside the buffer), aligned as documented;
    // any bit pattern is a `u64`.
    unsafe { core::ptr::read(data.as_ptr().add(at).cast::<u64>()) }
}
