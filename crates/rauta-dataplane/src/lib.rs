//! Userspace side of RAUTA's kernel tiers.
//!
//! Loads Tier 1's programs for one IPv4 VIP — XDP (SYN-cookie handshake, first segment replayed to the
//! local listener) and TC egress (completes the hand-off) — writes the VIP map, attaches both to
//! interfaces, writes the route maps from the compiled table, reads the counters and flow tables, and
//! detaches on drop. `rauta run --kernel-tiers auto|required --interface IFACE` drives it
//! (`crates/rauta/src/kernel.rs`). The programs themselves live in `crates/rauta-ebpf`; the types both sides share
//! (map layouts, reason codes) in `rauta-common`. Design: `docs/kernel-tiers.md`.

mod capability;
mod counters;
mod error;
mod loader;
pub mod object;
pub mod routes;

pub use capability::{kernel_tiers_available, Unavailable};
pub use counters::{Counters, RouteCounters, StatusClasses};
pub use error::DataplaneError;
pub use loader::{
    node_window_scale, AppliedRoutes, AttachMode, FirstRequestLatency, KernelTiers, PacketRun,
    TableSizes, TcRun, XdpAction, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT,
};
pub use rauta_common::{reason::Reason, route::RouteReason};
pub use routes::{
    route_maps_from_table, route_maps_with_health, HealthySlots, RouteMapsImage, ServiceImage,
    SkipReason, Skipped,
};
