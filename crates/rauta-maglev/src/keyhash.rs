//! The two independent hashes of a backend key that define its Maglev permutation.
//!
//! They must be fixed functions of the key bytes (no random seed) so that every replica and every
//! restart builds the same table: a flow keeps its backend across a controller restart.

/// FNV-1a over the key with a seed folded into the start state, then the splitmix64 finaliser so that
/// nearby keys ("10.0.0.1:80", "10.0.0.2:80") get unrelated values. Different seeds give independent
/// hashes for practical purposes.
fn seeded_hash(seed: u64, key: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= key.len() as u64;
    splitmix64(h)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `(offset, skip)` of the permutation of a key in a table of prime size `size` (>= 2):
/// `offset` in `0..size`, `skip` in `1..size`, so `offset + j * skip (mod size)` visits every slot.
pub(crate) fn permutation(key: &str, size: u32) -> (u32, u32) {
    let size = u64::from(size);
    let h1 = seeded_hash(0x6d61_676c_6576_0001, key.as_bytes()); // "maglev" + 1
    let h2 = seeded_hash(0x6d61_676c_6576_0002, key.as_bytes());
    let offset = h1 % size;
    let skip = h2 % (size - 1) + 1;
    // Both are < size <= u32::MAX.
    (offset as u32, skip as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_in_range_and_stable() {
        for key in ["", "a", "10.1.2.3:8080", "[2001:db8::1]:443"] {
            let (offset, skip) = permutation(key, 251);
            assert!(offset < 251);
            assert!((1..251).contains(&skip));
            assert_eq!((offset, skip), permutation(key, 251));
        }
    }

    #[test]
    fn fixed_values_do_not_drift() {
        // Tables must not change between releases (flows would move on upgrade): pin the hash.
        assert_eq!(seeded_hash(0, b""), splitmix64(0xcbf2_9ce4_8422_2325));
        let a = permutation("10.1.2.3:8080", 65521);
        let b = permutation("10.1.2.4:8080", 65521);
        assert_ne!(a, b);
        assert_eq!((a, b), PINNED);
    }

    const PINNED: ((u32, u32), (u32, u32)) = ((31055, 9709), (48475, 19065));

    #[test]
    fn hashes_are_independent() {
        // offset and skip must not be correlated, or permutations of similar keys would collide.
        let mut same = 0;
        for i in 0..1000 {
            let key = format!("10.0.{}.{}:80", i / 256, i % 256);
            let h1 = seeded_hash(0x6d61_676c_6576_0001, key.as_bytes());
            let h2 = seeded_hash(0x6d61_676c_6576_0002, key.as_bytes());
            if h1 % 251 == h2 % 251 {
                same += 1;
            }
        }
        assert!(same < 20, "{same} coincidences out of 1000");
    }
}
