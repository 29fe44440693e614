//! A CPU budget for one process tree during one measurement: a cgroup with a CPU quota (cgroup v2
//! `cpu.max`, or v1 `cpu.cfs_quota_us` where the cpu controller is still on the v1 hierarchy, as on
//! hybrid systems), so that a benchmark measures how much a proxy does with the same, smaller share of
//! a core instead of how fast the client's core can send.
//!
//! The cgroup is created for one measurement and removed when the [`CpuCap`] is dropped (on errors too):
//! its processes are moved back to the hierarchy's root cgroup first, since a cgroup with members cannot
//! be removed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The budget: `quota_us` of CPU time in every `period_us`. A short period keeps the pauses of a
/// throttled process short, so the cap costs throughput but little latency.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub quota_us: u64,
    pub period_us: u64,
}

impl Budget {
    pub fn percent(&self) -> f64 {
        self.quota_us as f64 * 100.0 / self.period_us as f64
    }
}

/// Which cgroup interface carries the cpu controller.
#[derive(Clone, Copy, Debug)]
enum Flavour {
    V2,
    V1,
}

/// A cgroup holding processes under a CPU quota; removed on drop.
pub struct CpuCap {
    dir: PathBuf,
    root: PathBuf,
}

const V2_ROOT: &str = "/sys/fs/cgroup";
const V1_CPU_ROOT: &str = "/sys/fs/cgroup/cpu";

impl CpuCap {
    /// Create the cgroup `name` with `budget`; a clear error when no writable cgroup cpu controller exists.
    pub fn create(name: &str, budget: Budget) -> Result<Self> {
        let (root, flavour) = find_controller()?;
        let dir = root.join(name);
        // A leftover of an interrupted run has the same name: reuse it rather than fail.
        if !dir.is_dir() {
            std::fs::create_dir(&dir).with_context(|| {
                format!(
                    "cannot create the cgroup {} (the CPU-capped scenario needs root)",
                    dir.display()
                )
            })?;
        }
        let cap = Self { dir, root };
        match flavour {
            Flavour::V2 => cap.write(
                "cpu.max",
                &format!("{} {}", budget.quota_us, budget.period_us),
            )?,
            Flavour::V1 => {
                // The quota must fit the period at every step: reset it, then period, then quota.
                cap.write("cpu.cfs_quota_us", "-1")?;
                cap.write("cpu.cfs_period_us", &budget.period_us.to_string())?;
                cap.write("cpu.cfs_quota_us", &budget.quota_us.to_string())?;
            }
        }
        Ok(cap)
    }

    /// Move process `pid` (all its threads) and its direct children (nginx's worker under its master)
    /// into the cgroup.
    pub fn add_tree(&self, pid: u32) -> Result<()> {
        self.write("cgroup.procs", &pid.to_string())?;
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for child in children.split_whitespace() {
            self.write("cgroup.procs", child)?;
        }
        Ok(())
    }

    /// How many periods the cgroup's processes were throttled in so far (`nr_throttled` of `cpu.stat`).
    pub fn throttled_periods(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.dir.join(file);
        std::fs::write(&path, value)
            .with_context(|| format!("cannot write {value:?} to {}", path.display()))
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace() {
            let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
        }
        if let Err(err) = std::fs::remove_dir(&self.dir) {
            eprintln!(
                "  warning: cannot remove the cgroup {} ({err}); remove it with rmdir",
                self.dir.display()
            );
        }
    }
}

/// The hierarchy with the cpu controller: v2 when its root lists `cpu` (and lets children use it), else the
/// v1 cpu hierarchy.
fn find_controller() -> Result<(PathBuf, Flavour)> {
    let v2 = Path::new(V2_ROOT);
    if let Ok(controllers) = std::fs::read_to_string(v2.join("cgroup.controllers")) {
        if controllers.split_whitespace().any(|c| c == "cpu") {
            let subtree =
                std::fs::read_to_string(v2.join("cgroup.subtree_control")).unwrap_or_default();
            if !subtree.split_whitespace().any(|c| c == "cpu") {
                std::fs::write(v2.join("cgroup.subtree_control"), "+cpu").with_context(|| {
                    format!("cannot enable the cpu controller for children of {V2_ROOT}")
                })?;
            }
            return Ok((v2.to_owned(), Flavour::V2));
        }
    }
    let v1 = Path::new(V1_CPU_ROOT);
    if v1.join("cpu.cfs_quota_us").is_file() {
        return Ok((v1.to_owned(), Flavour::V1));
    }
    bail!(
        "no cgroup cpu controller found (neither cgroup v2 at {V2_ROOT} with `cpu` in cgroup.controllers \
         nor cgroup v1 at {V1_CPU_ROOT}); the CPU-capped HTTPS scenario needs one"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A busy process moved into a cap is throttled, and dropping the cap removes the cgroup with the
    /// process still running (it goes back to the root cgroup first).
    #[test]
    fn a_capped_busy_process_is_throttled_and_the_cgroup_goes_away() {
        if !nix_root() {
            eprintln!("skipped: needs root to create cgroups");
            return;
        }
        let mut busy = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let name = format!("rauta-cpu-cap-test-{}", std::process::id());
        let budget = Budget {
            quota_us: 1000,
            period_us: 4000,
        };
        let cap = CpuCap::create(&name, budget).unwrap();
        let dir = cap.path().to_owned();
        cap.add_tree(busy.id()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let throttled = cap.throttled_periods().unwrap();
        drop(cap);
        let alive = busy.try_wait().unwrap().is_none();
        let _ = busy.kill();
        let _ = busy.wait();
        // 200 ms is 50 periods of 4 ms; a loop allowed 1 ms of each is throttled in nearly all of them.
        assert!(throttled >= 10, "throttled in only {throttled} periods");
        assert!(!dir.exists(), "{} still exists", dir.display());
        assert!(alive, "removing the cgroup must not touch its processes");
    }

    fn nix_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
                    .unwrap_or(false)
            })
            .unwrap_or(false)
    }
}
