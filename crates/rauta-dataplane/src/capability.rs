//! Can this process run the kernel tiers here? Checked once at startup so the binary can log one clear
//! reason and fall back to Tier 3 alone.

use std::path::Path;

use aya::util::KernelVersion;
use thiserror::Error;

/// Oldest kernel with `bpf_tcp_raw_gen_syncookie_ipv4` / `bpf_tcp_raw_check_syncookie_ipv4` (Linux 6.0).
const MIN_KERNEL: (u8, u8) = (6, 0);

/// Capability bits (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Why the kernel tiers are unavailable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// Loading BPF and attaching XDP needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN, or root).
    #[error("missing privileges: loading XDP needs CAP_BPF and CAP_NET_ADMIN (or root)")]
    Privileges,
    /// The kernel exposes no BTF, which the kernel tiers require.
    #[error("the kernel exposes no BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)")]
    NoBtf,
    /// The kernel is older than the SYN-cookie helpers.
    #[error("kernel {found} is too old: the SYN-cookie helpers need Linux {}.{} or newer", MIN_KERNEL.0, MIN_KERNEL.1)]
    KernelTooOld {
        /// The running kernel's version.
        found: String,
    },
    /// The kernel version or the process's capabilities could not be read.
    #[error("cannot tell whether the kernel tiers can run: {0}")]
    Unknown(String),
}

/// Checks privileges, BTF and kernel version. `Ok` means loading may still fail (the verifier has the last
/// word), but not for a reason known in advance.
pub fn kernel_tiers_available() -> Result<(), Unavailable> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Unavailable::Unknown(e.to_string()))?;
    let cap_eff = effective_capabilities(&status)
        .ok_or_else(|| Unavailable::Unknown("no CapEff in /proc/self/status".into()))?;
    if !privileged(cap_eff) {
        return Err(Unavailable::Privileges);
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(Unavailable::NoBtf);
    }
    let version = KernelVersion::current().map_err(|e| Unavailable::Unknown(e.to_string()))?;
    if version < KernelVersion::new(MIN_KERNEL.0, MIN_KERNEL.1, 0) {
        return Err(Unavailable::KernelTooOld {
            found: version.to_string(),
        });
    }
    Ok(())
}

/// The `CapEff` mask from the text of `/proc/<pid>/status`.
fn effective_capabilities(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

fn privileged(cap_eff: u64) -> bool {
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_NET_ADMIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cap_eff() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_capabilities(status), Some(0x1ff_ffff_ffff));
        assert_eq!(effective_capabilities("Name: x\n"), None);
    }

    #[test]
    fn needs_sys_admin_or_bpf_and_net_admin() {
        assert!(privileged(1 << CAP_SYS_ADMIN));
        assert!(privileged((1 << CAP_BPF) | (1 << CAP_NET_ADMIN)));
        assert!(!privileged(1 << CAP_BPF));
        assert!(!privileged(0));
    }
}
