//! A seeded xorshift64 generator for the property tests that compare a fast path with its plain version
//! over many inputs: deterministic, so a failure names a round that fails again.

/// Successive pseudo-random words from `seed` (non-zero).
pub fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
