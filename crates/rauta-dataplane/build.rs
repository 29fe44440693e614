//! Builds crates/rauta-ebpf for the BPF target with aya-build; the object lands in `OUT_DIR/rauta-ebpf`
//! and `src/object.rs` embeds it.
//!
//! The eBPF crate is its own workspace (excluded from the root one), so the nightly `cargo build` that
//! aya-build runs must start in its directory: aya-build passes `--package` but no manifest path.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const SETUP_HINT: &str =
    "run `cargo xtask setup` (see docs/kernel-tiers.md, \"Build requirements\")";

fn main() {
    if let Err(message) = build() {
        // A build script's panic message is what cargo shows; keep it one clear paragraph.
        panic!("\n\nrauta-dataplane: cannot build the eBPF program: {message}\n{SETUP_HINT}\n\n");
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let crates = manifest_dir
        .parent()
        .ok_or("crate has no parent directory")?;
    let ebpf_dir = crates.join("rauta-ebpf");
    for path in [
        ebpf_dir.join("src"),
        ebpf_dir.join("Cargo.toml"),
        ebpf_dir.join("Cargo.lock"),
        crates.join("rauta-common").join("src"),
        crates.join("rauta-common").join("Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-env-changed=PATH");

    check_toolchain()?;

    let ebpf_dir_str = ebpf_dir
        .to_str()
        .ok_or("non-UTF-8 path to crates/rauta-ebpf")?;
    env::set_current_dir(&ebpf_dir)
        .map_err(|e| format!("cannot enter {}: {e}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "rauta-ebpf",
            root_dir: ebpf_dir_str,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
    .map_err(|e| format!("{e:#}"))
}

/// Fails early, with the missing piece named, instead of letting nightly cargo fail deep in a log.
fn check_toolchain() -> Result<(), String> {
    let rustc = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output();
    let sysroot = match rustc {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => {
            return Err(format!(
                "the nightly toolchain is missing (`rustup run nightly rustc` said: {})",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
        Err(e) => {
            return Err(format!(
                "rustup is not available ({e}); the eBPF crate needs rustup's nightly"
            ))
        }
    };
    let rust_src = Path::new(&sysroot).join("lib/rustlib/src/rust/library/core");
    if !rust_src.is_dir() {
        return Err(
            "the nightly toolchain lacks rust-src (needed for -Z build-std=core)".to_owned(),
        );
    }
    match Command::new("bpf-linker").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "bpf-linker is installed but does not run: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("bpf-linker is not on PATH ({e})")),
    }
}
