//! Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
//! Balancer", NSDI 2016): pure construction of the lookup table that every tier indexes.
//!
//! A table is an array of `M` slots (`M` prime); each slot holds the index of a backend. A flow picks
//! `slots[flow_hash % M]` ([`rauta_common::flow::maglev_slot`]), so the kernel (Tier 1) and the proxy
//! (Tier 3) choose the same backend for the same client as long as they index the same table. Only
//! userspace builds tables; the kernel just reads them.
//!
//! # Construction
//! Each backend gets a permutation of `0..M` from two independent hashes of its key
//! (`offset = h1 % M`, `skip = h2 % (M - 1) + 1`; `M` prime makes every skip generate a full
//! permutation). Backends then take turns, in key order, claiming their next preferred slot that is
//! still free until the table is full. A backend with weight `w` takes `w / w_max` turns per round
//! (interleaved, as Envoy's weighted Maglev does), so its slot count is proportional to its weight;
//! weight 0 excludes it.
//!
//! # Table size: why a fixed prime ladder, at least 100 slots per backend
//! [`table_size_for`] picks the smallest prime of [`SIZE_LADDER`] that is `>= 100 x backends`
//! (capped at 65521):
//! - **Balance.** Population gives each backend `floor` or `ceil` of its (weighted) share of slots, so
//!   with at least 100 slots per backend every backend owns its fair share of the hash space to within
//!   about 1% (comfortably inside the ±5% the design promises; weighted backends with small shares are
//!   within one or two slots).
//! - **Stability.** A size change re-permutes every backend and so reshuffles nearly every flow. With a
//!   ladder (instead of "the next prime above 100 N") the size stays constant while the backend count
//!   changes within a rung, so removing one of `N` backends moves only about `1/N` of the flows.
//!   Maglev is not perfectly minimal: refilling the freed slots cascades a little, more so with fewer
//!   slots per backend. Measured mean fraction of flows moved when removing one backend, as a multiple
//!   of the minimal `1/N` (100 random key sets each): N=10 1.24, N=20 1.49, N=50 1.77, N=100 2.35,
//!   N=200 3.16 (worst of those cases: 0.06 of the table beyond `1/N`; rare small key sets cascade
//!   further — the worst of 20,000 random removals was 0.17 beyond `1/N`, at N=8). Every flow of the
//!   removed backend moves, plus usually a few percent of the others. Larger tables cut the extra (N=20 at
//!   65521 slots: 1.07), at the cost of memory; [`SLOTS_PER_BACKEND`] is the knob.
//! - **Memory.** Slots are `u16` (2 bytes): a one-backend service costs 251 slots = 502 bytes, the
//!   largest table (65521 slots) 128 KiB, so thousands of services fit easily in a BPF map.
//!
//! # Determinism and limits
//! [`MaglevTable::build`] sorts by key, so the same backends in any order give the same key-to-slot
//! mapping (slot values are indexes into the caller's slice, so they follow the caller's order). The
//! key hashes are fixed functions (no per-process seed), so every controller replica builds the same
//! table. Duplicate keys collapse to one entry (the first occurrence in the slice, with the largest
//! weight among the duplicates). At most [`MAX_BACKENDS`] (65535) backends take part: beyond that the
//! first 65535 by key are used; and because a slot is a `u16` index into the caller's slice, entries
//! at positions above 65535 of that slice cannot be addressed and are ignored.
#![forbid(unsafe_code)]

mod keyhash;
mod size;
mod table;

pub use size::{is_prime, table_size_for, MAX_TABLE_SIZE, SIZE_LADDER, SLOTS_PER_BACKEND};
pub use table::{MaglevBackend, MaglevError, MaglevTable, MAX_BACKENDS};
