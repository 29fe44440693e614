//! The compiled BPF object (built by `build.rs` with aya-build), embedded in the binary.

/// The ELF object holding RAUTA's BPF programs and maps, aligned as aya requires.
pub static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rauta-ebpf"));
