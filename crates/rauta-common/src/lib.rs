//! Types and pure functions shared by the BPF programs and userspace.
//!
//! Everything here is `no_std`, allocation-free and verifier-friendly (no loops without a constant bound,
//! no recursion), because the same code runs inside the kernel and in the userspace proxy. Keeping one copy
//! is the point: Tier 1 and Tier 3 must pick the same backend for the same client.
#![no_std]
#![forbid(unsafe_code)]

pub mod flow;
