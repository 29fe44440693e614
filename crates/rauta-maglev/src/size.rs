//! Table sizes: the prime ladder and the size chosen for a backend count (see the crate docs for why).

/// Minimum slots per backend that [`table_size_for`] aims for; keeps each backend within ~1% of its share.
pub const SLOTS_PER_BACKEND: usize = 100;

/// The sizes tables may have. Each is prime (required for Maglev permutations) and roughly doubles the
/// previous one, so a service's size changes rarely as its backend count moves.
pub const SIZE_LADDER: [u32; 9] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521];

/// The largest table size (65521 slots, 128 KiB of `u16`).
pub const MAX_TABLE_SIZE: u32 = SIZE_LADDER[SIZE_LADDER.len() - 1];

/// The table size for `backend_count` backends: the smallest rung of [`SIZE_LADDER`] with at least
/// [`SLOTS_PER_BACKEND`] slots per backend, or [`MAX_TABLE_SIZE`] when no rung is big enough (more than
/// 655 backends). Always a prime; 0 or 1 backends give the smallest rung (251).
pub fn table_size_for(backend_count: usize) -> u32 {
    let wanted = backend_count.saturating_mul(SLOTS_PER_BACKEND);
    SIZE_LADDER
        .iter()
        .copied()
        .find(|&size| size as usize >= wanted)
        .unwrap_or(MAX_TABLE_SIZE)
}

/// Whether `n` is prime (trial division; table sizes are small).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n & 1 == 0 {
        return n == 2;
    }
    let n = u64::from(n);
    let mut d = 3u64;
    while d * d <= n {
        if (n % d) == 0 {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_is_prime_and_increasing() {
        for pair in SIZE_LADDER.windows(2) {
            assert!(pair[0] < pair[1]);
        }
        for size in SIZE_LADDER {
            assert!(is_prime(size), "{size} is not prime");
        }
    }

    #[test]
    fn size_for_counts() {
        assert_eq!(table_size_for(0), 251);
        assert_eq!(table_size_for(1), 251);
        assert_eq!(table_size_for(2), 251);
        assert_eq!(table_size_for(3), 509);
        assert_eq!(table_size_for(5), 509);
        assert_eq!(table_size_for(6), 1021);
        assert_eq!(table_size_for(10), 1021);
        assert_eq!(table_size_for(11), 2039);
        assert_eq!(table_size_for(655), 65521);
        assert_eq!(table_size_for(656), 65521);
        assert_eq!(table_size_for(1_000_000), 65521);
        assert_eq!(table_size_for(usize::MAX), 65521);
    }

    #[test]
    fn size_is_stable_within_a_rung() {
        // Removing one backend from 10 keeps the size, so only that backend's flows move.
        assert_eq!(table_size_for(10), table_size_for(9));
    }

    #[test]
    fn primes() {
        let primes: Vec<u32> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65521));
        assert!(!is_prime(65535));
        assert!(is_prime(u32::MAX - 4)); // 4294967291, the largest 32-bit prime
    }
}
