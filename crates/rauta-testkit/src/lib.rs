//! Test and demo helpers shared by RAUTA's integration tests, the demo and the benchmarks.
//!
//! - [`echo`]: a small, fast HTTP/1.1 backend (also shipped as the `rauta-echo` binary) whose answers name
//!   the backend that served them, so a test can see where the proxy routed a request.
//! - [`client`]: a minimal HTTP/1.1 client to drive the proxy or a backend from a test.

pub mod client;
pub mod echo;
