//! `cargo xtask setup`: make a fresh Debian machine ready for the tests, the demo and the benchmarks.
//!
//! Each step checks first and installs only what is missing, so running setup again is cheap and changes
//! nothing. A failing step prints what to do by hand; the other steps still run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

use crate::cmd::{self, on_path, output, succeeds};

/// Flags of `cargo xtask setup`.
#[derive(clap::Args, Debug, Default)]
pub struct SetupArgs {
    /// Only what the demo needs (curl; the BPF toolchain only once the build needs it).
    #[arg(long)]
    pub demo: bool,
}

/// A Debian package and a program it provides (the program's presence is what we check).
struct Package {
    name: &'static str,
    program: &'static str,
    why: &'static str,
}

/// Everything tests, benches and the demo shell out to.
const PACKAGES: &[Package] = &[
    Package {
        name: "curl",
        program: "curl",
        why: "demo requests",
    },
    Package {
        name: "nginx-light",
        program: "nginx",
        why: "benchmark baseline",
    },
    Package {
        name: "wrk",
        program: "wrk",
        why: "HTTP/1.1 load generator",
    },
    Package {
        name: "nghttp2-client",
        program: "h2load",
        why: "HTTP/2 load generator",
    },
    Package {
        name: "iproute2",
        program: "ip",
        why: "network namespaces in root tests",
    },
    Package {
        name: "ethtool",
        program: "ethtool",
        why: "NIC offload settings in root tests",
    },
    Package {
        name: "nftables",
        program: "nft",
        why: "random packet drops in the splice loss test (tests/splice_scale.rs)",
    },
    Package {
        name: "tcpdump",
        program: "tcpdump",
        why: "packet captures when debugging",
    },
    Package {
        name: "openssl",
        program: "openssl",
        why: "TLS tests (s_client: certificate choice, versions, ALPN; RSA test keys)",
    },
    Package {
        name: "testssl.sh",
        program: "testssl",
        why: "auditing the HTTPS listener",
    },
    Package {
        name: "bpftool",
        program: "bpftool",
        why: "inspecting loaded BPF programs and maps",
    },
];

/// Programs of `sbin` packages are not on a normal user's PATH; look there too.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// Python modules used by protocol tests (gRPC, WebSocket), with the pip package providing each.
const PYTHON_MODULES: &[(&str, &str)] = &[("grpc", "grpcio"), ("websockets", "websockets")];

/// Runs setup; an error if any step failed (after all steps ran).
pub fn run(args: &SetupArgs) -> Result<()> {
    let mut failed = Vec::new();
    let bpf = bpf_needed();
    let mut step = |name: &str, result: Result<String>| match result {
        Ok(done) => println!("setup: {name} ... {done}"),
        Err(e) => {
            println!("setup: {name} ... FAILED\n  {e:#}");
            failed.push(name.to_owned());
        }
    };
    let wanted: Vec<&Package> = PACKAGES
        .iter()
        .filter(|p| !args.demo || p.name == "curl" || p.name == "openssl")
        .collect();
    step("apt packages", apt_packages(&wanted));
    if args.demo && !bpf {
        println!("setup: BPF toolchain ... skipped (no crate builds BPF code yet)");
    } else {
        step("rust-src (nightly)", rust_src());
        step("bpf-linker", bpf_linker());
    }
    if !args.demo {
        step("python modules", python_modules());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("setup failed: {}", failed.join(", "))
    }
}

/// True once some crate builds BPF code (it then has `aya-build` as a build dependency), so the nightly
/// toolchain's rust-src and bpf-linker are needed just to compile the workspace.
pub fn bpf_needed() -> bool {
    let crates = cmd::repo_root().join("crates");
    std::fs::read_dir(crates)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            std::fs::read_to_string(entry.path().join("Cargo.toml"))
                .map(|toml| toml.contains("aya-build"))
                .unwrap_or(false)
        })
}

fn program_present(program: &str) -> bool {
    on_path(program)
        || SBIN_DIRS
            .iter()
            .any(|d| Path::new(d).join(program).is_file())
}

fn apt_packages(wanted: &[&Package]) -> Result<String> {
    let missing: Vec<&Package> = wanted
        .iter()
        .copied()
        .filter(|p| !program_present(p.program))
        .collect();
    if missing.is_empty() {
        return Ok("ok (already installed)".into());
    }
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    let list = names.join(" ");
    for p in &missing {
        println!("setup: apt packages ... missing {} ({})", p.name, p.why);
    }
    if !on_path("apt-get") {
        bail!("no apt-get here; install with your package manager: {list}");
    }
    if !crate::netns_lab::is_root() {
        bail!("run as root or install: sudo apt-get install -y {list}");
    }
    // Only refresh the package lists when something must be installed: a warm machine stays offline.
    println!("setup: apt packages ... apt-get update");
    cmd::run(
        Command::new("apt-get")
            .args(["update", "-qq"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("apt-get update failed; check network access to the Debian mirrors")?;
    println!("setup: apt packages ... apt-get install {list}");
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&names)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing failed; try by hand: apt-get install -y {list}"))?;
    let still: Vec<&str> = missing
        .iter()
        .filter(|p| !program_present(p.program))
        .map(|p| p.program)
        .collect();
    if !still.is_empty() {
        bail!("installed, but still not found: {}", still.join(", "));
    }
    Ok(format!("ok (installed {list})"))
}

fn rust_src() -> Result<String> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))
        .context("rustup not found; install it from https://rustup.rs")?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        println!("setup: rust-src (nightly) ... installing the nightly toolchain");
        cmd::run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
        return Ok("ok (installed nightly with rust-src)".into());
    }
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))?;
    if installed.lines().any(|l| l.trim().starts_with("rust-src")) {
        return Ok("ok (already installed)".into());
    }
    cmd::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
    .context("try by hand: rustup component add rust-src --toolchain nightly")?;
    Ok("ok (installed)".into())
}

/// bpf-linker links BPF objects with the nightly toolchain's own LLVM (`libLLVM.so.<version>`), so it is
/// built against that library: no system LLVM is needed, and the versions always match.
///
/// Invariant: `<prefix>/lib` holds `libLLVM.so` (found by bpf-linker's build) and the versioned name (found
/// at run time through the RUNPATH the build records), both pointing into the current nightly. When nightly
/// is updated, re-running setup repoints the links, and rebuilds bpf-linker only if the LLVM major changed.
fn bpf_linker() -> Result<String> {
    if bpf_linker_works() {
        return Ok("ok (already installed)".into());
    }
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("no nightly toolchain; run: rustup toolchain install nightly")?;
    let lib_dir = PathBuf::from(sysroot.trim()).join("lib");
    let (llvm_lib, major) = find_libllvm(&lib_dir)?;
    let prefix = llvm_prefix()?;
    link_libllvm(&prefix, &llvm_lib)?;
    if bpf_linker_works() {
        return Ok(format!(
            "ok (repointed {} to nightly's LLVM)",
            prefix.display()
        ));
    }
    println!(
        "setup: bpf-linker ... building with cargo install against nightly's LLVM {major} \
         (takes several minutes)"
    );
    let feature = format!("llvm-{major}");
    cmd::run(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--force", "--no-default-features", "--features"])
            .arg(&feature)
            .env("LLVM_PREFIX", &prefix),
    )
    .with_context(|| {
        format!(
            "try by hand: LLVM_PREFIX={} cargo install bpf-linker --no-default-features --features {feature}",
            prefix.display()
        )
    })?;
    if !bpf_linker_works() {
        bail!(
            "bpf-linker was built but `bpf-linker --version` still fails; is ~/.cargo/bin on PATH? \
             does {} exist?",
            prefix.join("lib").join(llvm_lib.file_name().unwrap_or_default()).display()
        );
    }
    Ok(format!("ok (installed, LLVM {major})"))
}

fn bpf_linker_works() -> bool {
    succeeds(Command::new("bpf-linker").arg("--version"))
}

/// The versioned LLVM library of the toolchain (`libLLVM.so.22.1-rust-...`) and its major version.
fn find_libllvm(lib_dir: &Path) -> Result<(PathBuf, String)> {
    let entries =
        std::fs::read_dir(lib_dir).with_context(|| format!("cannot read {}", lib_dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(version) = name.strip_prefix("libLLVM.so.") {
            let major: String = version.chars().take_while(char::is_ascii_digit).collect();
            if !major.is_empty() {
                return Ok((entry.path(), major));
            }
        }
    }
    Err(anyhow!(
        "no libLLVM.so.<version> in {}; is the nightly toolchain complete? (rustup toolchain install nightly)",
        lib_dir.display()
    ))
}

/// `~/.cache/rauta-llvm-prefix` (or under `$XDG_CACHE_HOME`).
fn llvm_prefix() -> Result<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(cache.join("rauta-llvm-prefix"))
}

fn link_libllvm(prefix: &Path, llvm_lib: &Path) -> Result<()> {
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("cannot create {}", lib.display()))?;
    let versioned = llvm_lib
        .file_name()
        .context("libLLVM path has no file name")?;
    for name in [std::ffi::OsStr::new("libLLVM.so"), versioned] {
        let link = lib.join(name);
        if std::fs::read_link(&link).ok().as_deref() == Some(llvm_lib) {
            continue;
        }
        // A stale link (older nightly) is replaced; anything else in our cache dir is ours to replace too.
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(llvm_lib, &link)
            .with_context(|| format!("cannot link {} -> {}", link.display(), llvm_lib.display()))?;
    }
    Ok(())
}

fn python_modules() -> Result<String> {
    let python = if on_path("python3") {
        "python3"
    } else {
        bail!("python3 not found; install python3")
    };
    let missing: Vec<(&str, &str)> = PYTHON_MODULES
        .iter()
        .copied()
        .filter(|(module, _)| {
            !succeeds(Command::new(python).args(["-c", &format!("import {module}")]))
        })
        .collect();
    if missing.is_empty() {
        return Ok("ok (already installed)".into());
    }
    let pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    if !succeeds(Command::new(python).args(["-m", "pip", "--version"])) {
        bail!(
            "pip is missing; install python3-pip, then: python3 -m pip install {}",
            pkgs.join(" ")
        );
    }
    println!("setup: python modules ... pip install {}", pkgs.join(" "));
    cmd::run(
        Command::new(python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(&pkgs),
    )
    .with_context(|| format!("try by hand: python3 -m pip install {}", pkgs.join(" ")))?;
    Ok(format!("ok (installed {})", pkgs.join(" ")))
}
