//! Types and pure functions shared by the BPF programs and userspace.
//!
//! Everything here is `no_std`, allocation-free and verifier-friendly (no loops without a constant bound,
//! no recursion), because the same code runs inside the kernel and in the userspace proxy. Keeping one copy
//! is the point: Tier 1 and Tier 3 must pick the same backend for the same client, and the BPF program and
//! its loader must agree on every map layout and reason code.
//!
//! Unsafe code is denied crate-wide and forbidden in every module that can do without it; the only
//! exception is `pod`, which (with the `user` feature) declares the map types plain-old-data for aya —
//! a promise the compiler cannot check, hence `unsafe impl`.
#![no_std]
#![deny(unsafe_code)]

pub mod checksum;
#[forbid(unsafe_code)]
pub mod flow;
pub mod handoff;
pub mod maps;
#[cfg(feature = "user")]
mod pod;
pub mod reason;
pub mod route;
pub mod splice;
pub mod swar;
pub mod synack;
pub mod tcpopt;
#[cfg(test)]
mod test_rng;
