//! The flow hash: the key every tier hashes to index a service's Maglev table.
//!
//! Tier 3 keys Maglev on the client's address and port; Tier 1 must compute the identical value in BPF,
//! so the function is plain integer arithmetic with a fixed number of steps (the verifier accepts it and
//! it costs a few nanoseconds). It is a 32-bit finaliser (murmur3 `fmix32`) over the mixed words: not
//! cryptographic — an attacker who picks their source port picks their backend, which is true of every
//! L4 balancer and harmless here.

/// Final avalanche of murmur3: every input bit affects every output bit.
#[inline(always)]
pub const fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[inline(always)]
const fn mix(h: u32, word: u32) -> u32 {
    let k = word
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

/// Hash of an IPv4 client (address in network byte order as it sits in the packet, port in host order).
#[inline(always)]
pub const fn flow_hash_v4(addr: [u8; 4], port: u16) -> u32 {
    let h = mix(0x5241_5554, u32::from_be_bytes(addr)); // seed "RAUT"
    fmix32(mix(h, port as u32) ^ 6)
}

/// Hash of an IPv6 client (address as 16 bytes in network order, port in host order).
#[inline(always)]
pub const fn flow_hash_v6(addr: [u8; 16], port: u16) -> u32 {
    let mut h = 0x5241_5554;
    let mut i = 0;
    while i < 16 {
        h = mix(
            h,
            u32::from_be_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]),
        );
        i += 4;
    }
    fmix32(mix(h, port as u32) ^ 18)
}

/// The Maglev slot a hash selects in a table of `table_size` entries (a prime; see `rauta-maglev`).
/// Returns 0 for an empty table so that callers can index without a panic branch; they must check
/// emptiness themselves.
#[inline(always)]
pub const fn maglev_slot(hash: u32, table_size: u32) -> u32 {
    if table_size == 0 {
        0
    } else {
        hash % table_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_hash_depends_on_address_and_port() {
        let a = flow_hash_v4([198, 18, 0, 1], 40000);
        assert_ne!(a, flow_hash_v4([198, 18, 0, 2], 40000));
        assert_ne!(a, flow_hash_v4([198, 18, 0, 1], 40001));
        assert_eq!(a, flow_hash_v4([198, 18, 0, 1], 40000));
    }

    #[test]
    fn v6_and_v4_differ_for_mapped_addresses() {
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[198, 18, 0, 1]);
        assert_ne!(flow_hash_v4([198, 18, 0, 1], 1), flow_hash_v6(mapped, 1));
    }

    #[test]
    fn slots_spread_over_a_prime_table() {
        let size = 251u32;
        let mut seen = [0u32; 251];
        for port in 0..25100u16 {
            seen[maglev_slot(flow_hash_v4([198, 18, 1, 1], port), size) as usize] += 1;
        }
        // Fair share is 100 per slot; a decent hash keeps every slot within a generous band.
        assert!(seen.iter().all(|&n| (50..=160).contains(&n)), "{seen:?}");
    }

    #[test]
    fn empty_table_slot_is_zero() {
        assert_eq!(maglev_slot(12345, 0), 0);
    }
}
