//! Zeroing structs without `memset`.
//!
//! The BPF target has no `memset`: a `write_bytes` or `mem::zeroed` of more than a few bytes compiles to
//! a call of the object's own byte-at-a-time loop (`compiler_builtins`), ~5 instructions per byte run
//! on every packet. These helpers store whole words instead; the stores are volatile so that LLVM does
//! not recognise the loop as a memset and call it after all.

use core::mem::{MaybeUninit, align_of, size_of};

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

/// An all-zero `T` (a plain C struct of integers), built with word stores (see [`zero_in_place`]).
///
/// # Safety
/// All zero bytes must be a valid `T`.
#[inline(always)]
pub unsafe fn zeroed<T>() -> T {
    let mut value = MaybeUninit::<T>::uninit();
    // SAFETY: `value` is valid for writes of a `T`; every byte is written, and the caller vouches that
    // all-zero is a valid `T`.
    unsafe {
        zero_in_place(value.as_mut_ptr());
        value.assume_init()
    }
}
