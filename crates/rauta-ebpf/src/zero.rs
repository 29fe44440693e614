//! Zeroing structs without `memset`.
//!
//! The BPF target has no `memset`: a `write_bytes` or `mem::zeroed` of more than a few bytes compiles to
//! a call of the object's own byte-at-a-time loop (`compiler_builtins`), ~5 instructions per byte run
//! on every packet. [`zero_in_place`] stores whole words instead; the stores are volatile so that LLVM
//! does not recognise the loop as a memset and call it after all.
//!
//! Zero the value where it is used, never a temporary that is then moved there: LLVM forwards the
//! zeros of the temporary into the move and emits `memset` calls for the bytes the code does not
//! overwrite afterwards (what a by-value `zeroed()` did to the FIB lookup of every first request).

use core::mem::{align_of, size_of};

/// Sets the `T` at `p` to all zero bytes, 4 bytes per store. `T` must be 4-byte aligned and a multiple
/// of 4 bytes long (checked at compile time), and valid when all zero.
///
/// # Safety
/// `p` must be valid for writes of a `T`.
#[inline(always)]
pub unsafe fn zero_in_place<T>(p: *mut T) {
    const { assert!(align_of::<T>() >= 4 && size_of::<T>().is_multiple_of(4)) };
    let words = p.cast::<u32>();
    let mut i = 0;
    while i < size_of::<T>() / 4 {
        // SAFETY: `i` < the number of 4-byte words of the `T` the caller vouches for; aligned (checked).
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
}
