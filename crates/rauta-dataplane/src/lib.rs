//! Userspace side of RAUTA's kernel tiers.
//!
//! This first increment loads Tier 1's XDP program (SYN-cookie handshake for one IPv4 VIP), writes its VIP
//! map, attaches it to interfaces, reads its counters and detaches it on drop. Nothing here is wired into
//! the `rauta` binary yet. The programs themselves live in `crates/rauta-ebpf`; the types both sides share
//! (map layouts, reason codes) in `rauta-common`. Design: `docs/kernel-tiers.md`.

mod capability;
mod counters;
mod error;
mod loader;
pub mod object;

pub use capability::{kernel_tiers_available, Unavailable};
pub use counters::Counters;
pub use error::DataplaneError;
pub use loader::{
    AttachMode, KernelTiers, PacketRun, TableSizes, TcRun, XdpAction, TC_ACT_OK, TC_ACT_REDIRECT,
    TC_ACT_SHOT,
};
pub use rauta_common::reason::Reason;
