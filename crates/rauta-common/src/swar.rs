//! "Has byte" tricks on words of 8 bytes (SWAR: SIMD within a register), for the request parser in XDP
//! (`rauta-ebpf`'s `xdp/route.rs`), which reads the stored request 8 bytes at a time and steps byte by
//! byte only inside the words that hold something it must look at. A word is little-endian: byte `n`
//! of the word is bits `8n..8n + 8`. Masks mark a byte by its top bit (bit `8n + 7`).
#![forbid(unsafe_code)]

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const TOPS: u64 = 0x8080_8080_8080_8080;

/// Bytes below `n` (`n` <= 0x80). Exact up to and including the lowest marked byte (a borrow only
/// runs upwards from a byte that is below `n`); bytes above it may be marked falsely, so use it to
/// ask "any?" and "where is the first?", never "how many?".
#[inline(always)]
pub const fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * n as u64) & !w & TOPS
}

/// Bytes equal to `b`, exactly (no carry crosses a byte: 0x7f + 0x7f < 0x100).
#[inline(always)]
pub const fn equal(w: u64, b: u8) -> u64 {
    let t = w ^ (ONES * b as u64);
    !(((t & LOW7).wrapping_add(LOW7)) | t | LOW7)
}

/// The index (0..8) of the lowest marked byte of `mask`, 8 if none. The lowest set bit, moved to
/// bit 0 of its byte, times a constant whose byte `7 - n` is `n`, leaves `n` in the top byte (no
/// other product reaches it): no count-trailing-zeros instruction in BPF.
#[inline(always)]
pub const fn first(mask: u64) -> u32 {
    if mask == 0 {
        return 8;
    }
    let lowest = mask & mask.wrapping_neg();
    ((lowest >> 7).wrapping_mul(0x0001_0203_0405_0607) >> 56) as u32
}

/// The marked bytes of `mask` that come before byte `n` (0..=8).
#[inline(always)]
pub const fn before(mask: u64, n: u32) -> u64 {
    if n >= 8 {
        mask
    } else {
        mask & ((1u64 << (8 * n)) - 1)
    }
}

/// How many bytes `mask` marks (an exact mask: one top bit per byte at most).
#[inline(always)]
pub const fn count(mask: u64) -> u32 {
    ((mask >> 7).wrapping_mul(ONES) >> 56) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(bytes: [u8; 8]) -> u64 {
        u64::from_le_bytes(bytes)
    }

    fn marks(pred: impl Fn(u8) -> bool, bytes: [u8; 8]) -> u64 {
        let mut m = 0;
        for (n, b) in bytes.iter().enumerate() {
            if pred(*b) {
                m |= 0x80 << (8 * n);
            }
        }
        m
    }

    /// Words that stress the tricks: every byte from a small set of edge values (0, the thresholds and
    /// their neighbours, 0x7f, 0x80, 0xff) and random words.
    fn words() -> impl Iterator<Item = [u8; 8]> {
        const EDGES: [u8; 12] = [
            0, 1, b'\t', b'\n', b'\r', 0x1f, b' ', b'!', b':', 0x7f, 0x80, 0xff,
        ];
        let mut next = crate::test_rng::xorshift(0x5851_f42d_4c95_7f2du64);
        (0..200_000).map(move |round| {
            let r = next();
            if round % 2 == 0 {
                r.to_le_bytes()
            } else {
                let mut w = [0u8; 8];
                for (n, b) in w.iter_mut().enumerate() {
                    *b = EDGES[((r >> (5 * n)) % EDGES.len() as u64) as usize];
                }
                w
            }
        })
    }

    #[test]
    fn equal_marks_exactly_the_equal_bytes() {
        for w in words() {
            for b in [0u8, b' ', b'\n', b':', 0x7f, 0x80, 0xff] {
                assert_eq!(equal(word(w), b), marks(|x| x == b, w), "{w:?} == {b}");
            }
        }
    }

    #[test]
    fn below_finds_the_first_byte_below_and_whether_there_is_one() {
        for w in words() {
            for n in [1u8, 0x20, 0x80] {
                let exact = marks(|x| x < n, w);
                let fast = below(word(w), n);
                assert_eq!(fast == 0, exact == 0, "{w:?} < {n}");
                assert_eq!(first(fast), first(exact), "{w:?} < {n}");
            }
        }
    }

    #[test]
    fn first_before_and_count_agree_with_a_byte_loop() {
        for w in words() {
            let m = marks(|x| x & 1 == 1, w);
            let want_first = w.iter().position(|x| x & 1 == 1).unwrap_or(8) as u32;
            assert_eq!(first(m), want_first, "{w:?}");
            assert_eq!(count(m), w.iter().filter(|x| *x & 1 == 1).count() as u32);
            for n in 0..=8u32 {
                let want = marks(|_| true, w)
                    & m
                    & if n == 8 {
                        u64::MAX
                    } else {
                        (1u64 << (8 * n)) - 1
                    };
                assert_eq!(before(m, n), want, "{w:?} before {n}");
            }
        }
        assert_eq!(first(0), 8);
        assert_eq!(count(0), 0);
    }
}
