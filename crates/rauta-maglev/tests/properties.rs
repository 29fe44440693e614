//! Property tests of the Maglev guarantees the tiers rely on: balance, minimal disruption, order
//! independence and weights.

use proptest::prelude::*;
use rauta_maglev::{table_size_for, MaglevBackend, MaglevTable};
use std::collections::BTreeSet;

/// Distinct backend keys that look like real endpoints.
fn keys(max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set((any::<[u8; 4]>(), 1u16..), 1..max).prop_map(|set| {
        set.into_iter()
            .map(|(ip, port)| format!("{}.{}.{}.{}:{port}", ip[0], ip[1], ip[2], ip[3]))
            .collect()
    })
}

fn unweighted(keys: &[String]) -> Vec<MaglevBackend<'_>> {
    keys.iter()
        .map(|k| MaglevBackend { key: k, weight: 1 })
        .collect()
}

/// Fraction of slots whose backend changes when `keys[removed]` is removed at the same table size;
/// fails if any slot of the removed backend keeps it.
fn removal_disruption(keys: &[String], removed: usize) -> Result<f64, TestCaseError> {
    let size = table_size_for(keys.len());
    let before_b = unweighted(keys);
    let before = MaglevTable::build_with_size(&before_b, size);
    let rest: Vec<String> = keys
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != removed)
        .map(|(_, k)| k.clone())
        .collect();
    let after_b = unweighted(&rest);
    let after = MaglevTable::build_with_size(&after_b, size);
    let mut moved = 0u32;
    for slot in 0..size {
        let old = before_b[before.lookup(slot).unwrap()].key;
        let new = after_b[after.lookup(slot).unwrap()].key;
        if old == keys[removed] {
            prop_assert_ne!(new, old);
        }
        if old != new {
            moved += 1;
        }
    }
    Ok(f64::from(moved) / f64::from(size))
}

/// On average (30 key sets each) removing one backend moves close to the minimal 1/N: measured mean
/// ratios to 1/N are about 1.24 (N=10), 1.49 (N=20) and 1.77 (N=50) at the ladder's 100x sizes.
#[test]
fn mean_disruption_is_near_minimal() {
    let mut seed = 0x5eed_u64;
    for (n, limit) in [(10usize, 1.6), (20, 1.75), (50, 2.0)] {
        let mut total = 0.0;
        for _ in 0..30 {
            let keys: Vec<String> = (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    format!(
                        "{}.{}.{}.{}:{}",
                        seed >> 56,
                        (seed >> 48) as u8,
                        (seed >> 40) as u8,
                        (seed >> 32) as u8,
                        (seed >> 16) as u16
                    )
                })
                .collect();
            let removed = (seed >> 20) as usize % n;
            total += removal_disruption(&keys, removed).unwrap();
        }
        let mean_ratio = total / 30.0 * n as f64;
        assert!(
            mean_ratio <= limit,
            "N={n}: mean moved {mean_ratio:.2} x 1/N"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// (a) With >= 100 slots per backend every backend is within ±5% of its fair share (in fact
    /// within one slot).
    #[test]
    fn spread_is_fair(keys in keys(120)) {
        let b = unweighted(&keys);
        let table = MaglevTable::build(&b);
        let size = table.size();
        prop_assert!(size as usize >= 100 * keys.len().min(655));
        let fair = f64::from(size) / keys.len() as f64;
        for (i, &count) in table.slot_counts(b.len()).iter().enumerate() {
            prop_assert!((f64::from(count) - fair).abs() <= (0.05 * fair).max(1.0),
                "backend {} has {} slots, fair {}", i, count, fair);
            prop_assert!((f64::from(count) - fair).abs() < 1.0);
        }
    }

    /// (a, weighted) Each backend's share is within ±5% of its weighted fair share (or two slots for
    /// tiny shares, where one slot of rounding is already several percent).
    #[test]
    fn weighted_spread_is_fair(entries in prop::collection::vec(1u32..=10, 1..40), seed in any::<u32>()) {
        let keys: Vec<String> = (0..entries.len()).map(|i| format!("{seed}-{i}")).collect();
        let b: Vec<MaglevBackend> = keys.iter().zip(&entries)
            .map(|(k, &w)| MaglevBackend { key: k, weight: w }).collect();
        let total: u32 = entries.iter().sum();
        let size = table_size_for(total as usize);
        let table = MaglevTable::build_with_size(&b, size);
        let counts = table.slot_counts(b.len());
        prop_assert_eq!(counts.iter().sum::<u32>(), size);
        for (i, &count) in counts.iter().enumerate() {
            let fair = f64::from(size) * f64::from(entries[i]) / f64::from(total);
            prop_assert!((f64::from(count) - fair).abs() <= (0.05 * fair).max(2.0),
                "backend {} weight {} has {} slots, fair {:.1}", i, entries[i], count, fair);
        }
    }

    /// (b) Removing one of N backends at the same table size moves every key of the removed backend
    /// and only a little more than the minimal 1/N in total. Maglev's refill cascades, so the bound
    /// carries an allowance: typically the extra stays below 0.07 of the table, but rare sets of keys
    /// cascade further — the worst of 20,000 random removals (`worst_extra_disruption`) was 0.173, at
    /// N = 8. The per-case bound is therefore 1/N + 0.2; `mean_disruption_is_near_minimal` checks that the
    /// average stays near the minimum. (An earlier allowance of 1.5/N + 0.07 failed on such a set.)
    #[test]
    fn removal_disrupts_little(keys in keys(60), pick in any::<prop::sample::Index>()) {
        prop_assume!(keys.len() >= 2);
        let n = keys.len();
        let removed = pick.index(n);
        let fraction = removal_disruption(&keys, removed)?;
        prop_assert!(fraction <= 1.0 / n as f64 + 0.2,
            "moved {:.3} of keys removing 1 of {}", fraction, n);
    }

    /// (c) The same backends in any order give the same key for every slot.
    #[test]
    fn order_independent(keys in keys(50), weights in prop::collection::vec(0u32..5, 50), shuffle_seed in any::<u64>()) {
        let b: Vec<MaglevBackend> = keys.iter().zip(&weights)
            .map(|(k, &w)| MaglevBackend { key: k, weight: w }).collect();
        let mut shuffled = b.clone();
        // Deterministic Fisher-Yates with a small LCG, so a failure reproduces from the seed.
        let mut s = shuffle_seed | 1;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let t1 = MaglevTable::build(&b);
        let t2 = MaglevTable::build(&shuffled);
        prop_assert_eq!(t1.size(), t2.size());
        for slot in 0..t1.size() {
            prop_assert_eq!(b[t1.lookup(slot).unwrap()].key, shuffled[t2.lookup(slot).unwrap()].key);
        }
    }

    /// (d) Doubling one backend's weight doubles its share relative to an equal peer.
    #[test]
    fn weights_proportional(w in 1u32..8, n in 2usize..10) {
        let keys: Vec<String> = (0..n).map(|i| format!("10.9.0.{i}:80")).collect();
        let b: Vec<MaglevBackend> = keys.iter().enumerate()
            .map(|(i, k)| MaglevBackend { key: k, weight: if i == 0 { w } else { 1 } }).collect();
        let table = MaglevTable::build_with_size(&b, 16381);
        let counts = table.slot_counts(n);
        let unit = 16381.0 / f64::from(w + n as u32 - 1);
        prop_assert!((f64::from(counts[0]) - unit * f64::from(w)).abs() <= 2.0, "{:?}", counts);
        for &c in &counts[1..] {
            prop_assert!((f64::from(c) - unit).abs() <= 2.0, "{:?}", counts);
        }
    }

    /// Every slot points at an eligible backend; no index is out of range.
    #[test]
    fn slots_are_valid(keys in keys(30), weights in prop::collection::vec(0u32..3, 30)) {
        let b: Vec<MaglevBackend> = keys.iter().zip(&weights)
            .map(|(k, &w)| MaglevBackend { key: k, weight: w }).collect();
        let table = MaglevTable::build(&b);
        let eligible: BTreeSet<usize> = b.iter().enumerate().filter(|(_, x)| x.weight > 0).map(|(i, _)| i).collect();
        prop_assert_eq!(table.is_empty(), eligible.is_empty());
        for &s in table.slots() {
            prop_assert!(eligible.contains(&usize::from(s)));
        }
    }
}

/// The worst extra disruption over many random removals (measurement, run on demand: it sizes the
/// allowance of `removal_disrupts_little`).
#[test]
#[ignore = "measurement, run on demand"]
fn worst_extra_disruption() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::default();
    let mut worst = (0.0f64, 0usize);
    let mut by_n = std::collections::BTreeMap::<usize, f64>::new();
    for _ in 0..20_000 {
        let keys = keys(60).new_tree(&mut runner).unwrap().current();
        if keys.len() < 2 {
            continue;
        }
        let n = keys.len();
        let extra = removal_disruption(&keys, n / 2).unwrap() - 1.0 / n as f64;
        let e = by_n.entry(n).or_default();
        *e = e.max(extra);
        if extra > worst.0 {
            worst = (extra, n);
        }
    }
    println!("worst extra {:.3} at N={}", worst.0, worst.1);
    for (n, e) in by_n.iter().filter(|(n, _)| **n <= 12) {
        println!("N={n}: worst extra {e:.3}");
    }
}
