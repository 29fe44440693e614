//! `aya::Pod` for the map value types (userspace only, `user` feature).
//!
//! SAFETY (for every impl below): the type is `#[repr(C)]`, `Copy`, contains only integers and explicit
//! padding fields (no implicit padding, no `bool`, no references), so every bit pattern is a valid value
//! and copying its bytes to and from a BPF map is sound.
#![allow(unsafe_code)]

use crate::maps::{FlowKey, FlowState, HeldKey, PendingSegment, PendingShort, VipConfig};
use crate::route::{Endpoint, RouteDecision, RouteKey, RouteValue, ServiceEntry};
use crate::splice::{BackendLeg, NatKey, OldLeg, SpliceConfig, SpliceState, SplicedRequest};

unsafe impl aya::Pod for VipConfig {}
unsafe impl aya::Pod for FlowKey {}
unsafe impl aya::Pod for FlowState {}
unsafe impl aya::Pod for PendingSegment {}
unsafe impl aya::Pod for PendingShort {}
unsafe impl aya::Pod for HeldKey {}
unsafe impl aya::Pod for RouteKey {}
unsafe impl aya::Pod for RouteValue {}
unsafe impl aya::Pod for ServiceEntry {}
unsafe impl aya::Pod for Endpoint {}
unsafe impl aya::Pod for RouteDecision {}
unsafe impl aya::Pod for SpliceConfig {}
unsafe impl aya::Pod for NatKey {}
unsafe impl aya::Pod for BackendLeg {}
unsafe impl aya::Pod for SpliceState {}
unsafe impl aya::Pod for OldLeg {}
unsafe impl aya::Pod for SplicedRequest {}
