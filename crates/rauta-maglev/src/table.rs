//! The Maglev lookup table and its construction.

use crate::keyhash::permutation;
use crate::size::{is_prime, table_size_for};
use rauta_common::flow::maglev_slot;

/// The most backends a table can hold: slots are `u16` indexes.
pub const MAX_BACKENDS: usize = u16::MAX as usize;

/// One candidate backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaglevBackend<'a> {
    /// Stable identity, e.g. `"10.1.2.3:8080"`. The backend's slots depend only on this key (and the
    /// other keys), never on its position in the slice.
    pub key: &'a str,
    /// Relative weight; 0 excludes the backend.
    pub weight: u32,
}

/// Why a table could not be built with the requested size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// Maglev permutations only cover every slot when the size is prime.
    #[error("maglev table size {0} is not prime")]
    SizeNotPrime(u32),
}

/// A built Maglev table: `slots[i]` is the index (into the slice given to `build`) of the backend that
/// owns slot `i`. Immutable; rebuild when the backends change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaglevTable {
    /// Empty exactly when no backend was eligible; otherwise its length is a prime and every entry is
    /// the index of an eligible backend.
    slots: Box<[u16]>,
}

/// Per-backend state while populating.
struct Candidate {
    /// Index into the caller's slice.
    index: u16,
    skip: u32,
    /// Next slot of this backend's permutation to try (`offset + j * skip mod M`, kept incrementally;
    /// starts at `offset`).
    next: u32,
    /// Weight divided by the gcd of all weights.
    weight: u64,
    /// Turns are taken while `round * weight >= credit`; each turn adds `max_weight` to the credit.
    credit: u64,
}

impl MaglevTable {
    /// Builds a table sized by [`table_size_for`] the number of eligible backends.
    /// No eligible backend (empty slice or all weights 0) gives an empty table.
    pub fn build(backends: &[MaglevBackend]) -> MaglevTable {
        let eligible = eligible(backends);
        let size = table_size_for(eligible.len());
        populate(backends, &eligible, size)
    }

    /// Builds a table of exactly `size` slots (for callers that keep a size fixed, and for tests).
    ///
    /// # Panics
    /// If `size` is not prime: a programming error (sizes come from code, not from data). Use
    /// [`MaglevTable::try_build_with_size`] for sizes from elsewhere.
    pub fn build_with_size(backends: &[MaglevBackend], size: u32) -> MaglevTable {
        match Self::try_build_with_size(backends, size) {
            Ok(table) => table,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`MaglevTable::build_with_size`] but returns an error for a size that is not prime.
    pub fn try_build_with_size(
        backends: &[MaglevBackend],
        size: u32,
    ) -> Result<MaglevTable, MaglevError> {
        if !is_prime(size) {
            return Err(MaglevError::SizeNotPrime(size));
        }
        Ok(populate(backends, &eligible(backends), size))
    }

    /// Number of slots (0 for an empty table).
    pub fn size(&self) -> u32 {
        // The length is a u32 prime or 0 by construction.
        self.slots.len() as u32
    }

    /// True when no backend was eligible: every lookup returns `None`.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The backend (index into the slice given to `build`) for a flow hash, e.g.
    /// [`rauta_common::flow::flow_hash_v4`]. `None` for an empty table.
    pub fn lookup(&self, hash: u32) -> Option<usize> {
        self.slots
            .get(maglev_slot(hash, self.size()) as usize)
            .map(|&i| usize::from(i))
    }

    /// The raw slots, for writing to a BPF array map.
    pub fn slots(&self) -> &[u16] {
        &self.slots
    }

    /// How many slots each backend owns, indexed like the slice given to `build` (`len` entries).
    /// Useful for metrics and tests.
    pub fn slot_counts(&self, len: usize) -> Vec<u32> {
        let mut counts = vec![0u32; len];
        for &s in self.slots.iter() {
            if let Some(c) = counts.get_mut(usize::from(s)) {
                *c += 1;
            }
        }
        counts
    }
}

/// The backends that take part, as indexes into `backends`, sorted by key: weight > 0, addressable by
/// a u16, one entry per key (first occurrence, largest weight), at most [`MAX_BACKENDS`].
fn eligible(backends: &[MaglevBackend]) -> Vec<(u16, u32)> {
    let mut sorted: Vec<(u16, u32)> = backends
        .iter()
        .enumerate()
        .take(usize::from(u16::MAX) + 1)
        .filter(|(_, b)| b.weight > 0)
        // The take() above bounds i to u16::MAX.
        .map(|(i, b)| (i as u16, b.weight))
        .collect();
    let key = |i: u16| backends[usize::from(i)].key;
    // By key, then position, so the first occurrence of a duplicate comes first.
    sorted.sort_by(|a, b| key(a.0).cmp(key(b.0)).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<(u16, u32)> = Vec::with_capacity(sorted.len());
    for (index, weight) in sorted {
        match chosen.last_mut() {
            Some(kept) if key(kept.0) == key(index) => kept.1 = kept.1.max(weight),
            _ => chosen.push((index, weight)),
        }
    }
    chosen.truncate(MAX_BACKENDS);
    chosen
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Maglev population (paper, Pseudocode 1) with weighted turns. `size` is prime.
fn populate(backends: &[MaglevBackend], eligible: &[(u16, u32)], size: u32) -> MaglevTable {
    if eligible.is_empty() {
        return MaglevTable::default();
    }
    let g = eligible
        .iter()
        .fold(0u64, |g, &(_, w)| gcd(g, u64::from(w)))
        .max(1);
    let mut candidates: Vec<Candidate> = eligible
        .iter()
        .map(|&(index, weight)| {
            let (offset, skip) = permutation(backends[usize::from(index)].key, size);
            Candidate {
                index,
                skip,
                next: offset,
                weight: u64::from(weight) / g,
                credit: 0,
            }
        })
        .collect();
    let max_weight = candidates.iter().map(|c| c.weight).max().unwrap_or(1);

    const FREE: u32 = u32::MAX;
    let mut owner = vec![FREE; size as usize];
    let mut filled = 0u32;
    // Invariant: each pass of the outer loop gives the max-weight backends one turn, so the table
    // fills after at most `size` passes; `round` cannot overflow u64 with `weight <= u32::MAX`.
    let mut round = 0u64;
    'fill: loop {
        for c in candidates.iter_mut() {
            if round * c.weight < c.credit {
                continue;
            }
            c.credit += max_weight;
            // Walk this backend's permutation to its next free slot. Terminates: the permutation
            // covers every slot (size prime) and at least one slot is free.
            while owner[c.next as usize] != FREE {
                c.next = ((u64::from(c.next) + u64::from(c.skip)) % u64::from(size)) as u32;
            }
            owner[c.next as usize] = u32::from(c.index);
            filled += 1;
            if filled == size {
                break 'fill;
            }
        }
        round += 1;
    }
    MaglevTable {
        slots: owner.into_iter().map(|o| o as u16).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rauta_common::flow::flow_hash_v4;

    fn backends<'a>(keys: &'a [&'a str]) -> Vec<MaglevBackend<'a>> {
        keys.iter()
            .map(|&key| MaglevBackend { key, weight: 1 })
            .collect()
    }

    #[test]
    fn empty_input_gives_empty_table() {
        let table = MaglevTable::build(&[]);
        assert!(table.is_empty());
        assert_eq!(table.size(), 0);
        assert_eq!(table.lookup(12345), None);
        assert!(table.slots().is_empty());
    }

    #[test]
    fn all_zero_weights_give_empty_table() {
        let b = [
            MaglevBackend {
                key: "a",
                weight: 0,
            },
            MaglevBackend {
                key: "b",
                weight: 0,
            },
        ];
        assert!(MaglevTable::build(&b).is_empty());
        assert!(MaglevTable::build_with_size(&b, 251).is_empty());
    }

    #[test]
    fn single_backend_owns_every_slot() {
        let b = backends(&["10.1.2.3:8080"]);
        let table = MaglevTable::build(&b);
        assert_eq!(table.size(), 251);
        assert!(table.slots().iter().all(|&s| s == 0));
        assert_eq!(table.lookup(flow_hash_v4([198, 18, 0, 1], 40000)), Some(0));
    }

    #[test]
    fn zero_weight_backend_gets_no_slots() {
        let b = [
            MaglevBackend {
                key: "a",
                weight: 1,
            },
            MaglevBackend {
                key: "b",
                weight: 0,
            },
            MaglevBackend {
                key: "c",
                weight: 1,
            },
        ];
        let table = MaglevTable::build(&b);
        let counts = table.slot_counts(3);
        assert_eq!(counts[1], 0);
        assert_eq!(counts[0] + counts[2], 251);
        // Two eligible backends: sized for two, each gets floor or ceil of half.
        assert!(counts[0].abs_diff(counts[2]) <= 1, "{counts:?}");
    }

    #[test]
    fn equal_weights_split_to_within_one_slot() {
        let keys: Vec<String> = (0..7).map(|i| format!("10.0.0.{i}:80")).collect();
        let b: Vec<MaglevBackend> = keys
            .iter()
            .map(|k| MaglevBackend { key: k, weight: 3 })
            .collect();
        let table = MaglevTable::build(&b);
        assert_eq!(table.size(), 1021);
        let counts = table.slot_counts(7);
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 1, "{counts:?}");
        assert_eq!(counts.iter().sum::<u32>(), 1021);
    }

    #[test]
    fn weights_are_proportional() {
        let b = [
            MaglevBackend {
                key: "a",
                weight: 1,
            },
            MaglevBackend {
                key: "b",
                weight: 2,
            },
            MaglevBackend {
                key: "c",
                weight: 3,
            },
        ];
        let table = MaglevTable::build_with_size(&b, 6007);
        let counts = table.slot_counts(3);
        // Shares 1/6, 2/6, 3/6 of 6007 slots, to within a couple of slots.
        let fair = [6007.0 / 6.0, 2.0 * 6007.0 / 6.0, 3.0 * 6007.0 / 6.0];
        for i in 0..3 {
            assert!((f64::from(counts[i]) - fair[i]).abs() <= 2.0, "{counts:?}");
        }
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let b = [
            MaglevBackend {
                key: "a",
                weight: u32::MAX,
            },
            MaglevBackend {
                key: "b",
                weight: u32::MAX - 1,
            },
            MaglevBackend {
                key: "c",
                weight: 1,
            },
        ];
        let table = MaglevTable::build(&b);
        let counts = table.slot_counts(3);
        assert_eq!(counts.iter().sum::<u32>(), table.size());
        // "c" takes one turn in the first round, then essentially never again.
        assert_eq!(counts[2], 1);
    }

    #[test]
    fn order_does_not_matter() {
        let fwd = backends(&["a:1", "b:1", "c:1", "d:1"]);
        let rev: Vec<MaglevBackend> = fwd.iter().rev().copied().collect();
        let t1 = MaglevTable::build(&fwd);
        let t2 = MaglevTable::build(&rev);
        for h in 0..t1.size() {
            let k1 = fwd[t1.lookup(h).unwrap()].key;
            let k2 = rev[t2.lookup(h).unwrap()].key;
            assert_eq!(k1, k2);
        }
    }

    #[test]
    fn duplicate_keys_collapse_to_first_with_largest_weight() {
        let b = [
            MaglevBackend {
                key: "x",
                weight: 1,
            },
            MaglevBackend {
                key: "y",
                weight: 1,
            },
            MaglevBackend {
                key: "x",
                weight: 1,
            },
        ];
        let table = MaglevTable::build(&b);
        let counts = table.slot_counts(3);
        assert_eq!(counts[2], 0, "the duplicate is not a second backend");
        assert!(counts[0].abs_diff(counts[1]) <= 1, "{counts:?}");
        // Equivalent to the deduplicated input.
        let dedup = [b[0], b[1]];
        assert_eq!(table, MaglevTable::build(&dedup));

        let heavier = [
            MaglevBackend {
                key: "x",
                weight: 1,
            },
            MaglevBackend {
                key: "y",
                weight: 1,
            },
            MaglevBackend {
                key: "x",
                weight: 3,
            },
        ];
        let counts = MaglevTable::build_with_size(&heavier, 4001).slot_counts(3);
        assert_eq!(counts[2], 0);
        assert!((2995..=3006).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn non_prime_size_is_an_error() {
        let b = backends(&["a"]);
        assert_eq!(
            MaglevTable::try_build_with_size(&b, 250),
            Err(MaglevError::SizeNotPrime(250))
        );
        assert_eq!(
            MaglevTable::try_build_with_size(&b, 0),
            Err(MaglevError::SizeNotPrime(0))
        );
        assert!(MaglevTable::try_build_with_size(&b, 2).is_ok());
    }

    #[test]
    #[should_panic(expected = "not prime")]
    fn build_with_non_prime_size_panics() {
        MaglevTable::build_with_size(&backends(&["a"]), 100);
    }

    #[test]
    fn more_backends_than_slots_still_fills_the_table() {
        let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
        let b: Vec<MaglevBackend> = keys
            .iter()
            .map(|k| MaglevBackend { key: k, weight: 1 })
            .collect();
        let table = MaglevTable::build_with_size(&b, 251);
        assert_eq!(table.size(), 251);
        let counts = table.slot_counts(300);
        assert!(counts.iter().all(|&c| c <= 1));
        assert_eq!(counts.iter().sum::<u32>(), 251);
    }

    #[test]
    fn caps_at_max_backends_by_key() {
        // 65537 entries: the one at position 65536 cannot be addressed by a u16 slot, and of the
        // remaining 65536 only the first 65535 by key take part (keys are zero-padded, so key order
        // is position order and the entry at position 65535 is the one dropped).
        let keys: Vec<String> = (0..65537).map(|i| format!("k{i:06}")).collect();
        let b: Vec<MaglevBackend> = keys
            .iter()
            .map(|k| MaglevBackend { key: k, weight: 1 })
            .collect();
        let chosen = eligible(&b);
        assert_eq!(chosen.len(), MAX_BACKENDS);
        assert_eq!(chosen.last().unwrap().0, 65534);
        let table = MaglevTable::build(&b);
        assert_eq!(table.size(), 65521);
        assert!(table.slots().iter().all(|&s| s < 65535));
    }

    #[test]
    fn golden_table_does_not_drift() {
        // The table for fixed keys is pinned: a change would move every flow on upgrade.
        let b = backends(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        let table = MaglevTable::build_with_size(&b, 13);
        assert_eq!(table.slots(), GOLDEN);
    }
    const GOLDEN: &[u16] = &[1, 0, 0, 2, 0, 1, 2, 1, 2, 2, 0, 1, 0];
}
