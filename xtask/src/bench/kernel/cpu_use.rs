//! Per-core CPU use during a measurement, from `/proc/stat`: how many cores each target really used.
//!
//! The kernel's work for direct forwarding and for Tier 1 (veth, XDP, TC, the stack) runs in softirq on
//! whichever core raised it and belongs to no process, so a process's CPU time cannot show it; the
//! per-core counters can. They count everything on the machine, other users' work included: read them
//! next to the load average.

/// Jiffies of one core: (busy, softirq, total).
type Jiffies = [u64; 3];

/// A snapshot of every core's counters.
#[derive(Debug, Clone, Default)]
pub struct CoreTimes(Vec<Jiffies>);

/// One core's share of a time span, in percent of that span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreUse {
    /// Time not idle (user, system, irq, softirq, steal).
    pub busy_pct: f64,
    /// The softirq part of it (network receive and transmit, XDP, TC).
    pub softirq_pct: f64,
}

impl CoreTimes {
    /// The counters now; empty if `/proc/stat` cannot be read.
    pub fn now() -> CoreTimes {
        CoreTimes::parse(&std::fs::read_to_string("/proc/stat").unwrap_or_default())
    }

    /// Parses the `cpuN ...` lines of `/proc/stat` (the aggregate `cpu` line is skipped).
    fn parse(stat: &str) -> CoreTimes {
        let mut cores = Vec::new();
        for line in stat.lines() {
            let mut words = line.split_whitespace();
            let Some(name) = words.next() else { continue };
            if !name.starts_with("cpu") || name == "cpu" {
                continue;
            }
            // user nice system idle iowait irq softirq steal (guest time is already in user).
            let v: Vec<u64> = words.take(8).filter_map(|w| w.parse().ok()).collect();
            if v.len() < 8 {
                continue;
            }
            let total: u64 = v.iter().sum();
            let idle = v[3] + v[4];
            cores.push([total - idle, v[6], total]);
        }
        CoreTimes(cores)
    }

    /// Each core's use between `self` (earlier) and `later`.
    pub fn until(&self, later: &CoreTimes) -> Vec<CoreUse> {
        self.0
            .iter()
            .zip(&later.0)
            .map(|(a, b)| {
                let total = b[2].saturating_sub(a[2]).max(1) as f64;
                CoreUse {
                    busy_pct: b[0].saturating_sub(a[0]) as f64 * 100.0 / total,
                    softirq_pct: b[1].saturating_sub(a[1]) as f64 * 100.0 / total,
                }
            })
            .collect()
    }
}

/// `core 0 12% (softirq 0%), core 1 100% (softirq 41%)`, or `-` when nothing was measured.
pub fn describe(cores: &[CoreUse]) -> String {
    if cores.is_empty() {
        return "-".to_owned();
    }
    cores
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "core {i} {:.0}% (softirq {:.0}%)",
                c.busy_pct, c.softirq_pct
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_core_busy_and_softirq_shares_between_two_snapshots() {
        let before = CoreTimes::parse(
            "cpu  100 0 100 800 0 0 0 0 0 0\n\
             cpu0 50 0 50 400 0 0 0 0 0 0\n\
             cpu1 50 0 50 400 0 0 0 0 0 0\nintr 1 2 3\n",
        );
        // core 0: 100 jiffies later, 10 of them busy; core 1: all 100 busy, 40 in softirq.
        let after = CoreTimes::parse(
            "cpu  0 0 0 0 0 0 0 0 0 0\n\
             cpu0 55 0 55 490 0 0 0 0 0 0\n\
             cpu1 80 0 80 400 0 0 40 0 0 0\n",
        );
        let used = before.until(&after);
        assert_eq!(used.len(), 2);
        assert!((used[0].busy_pct - 10.0).abs() < 1e-9);
        assert_eq!(used[0].softirq_pct, 0.0);
        assert!((used[1].busy_pct - 100.0).abs() < 1e-9);
        assert!((used[1].softirq_pct - 40.0).abs() < 1e-9);
        assert_eq!(
            describe(&used),
            "core 0 10% (softirq 0%), core 1 100% (softirq 40%)"
        );
        assert_eq!(describe(&[]), "-");
    }
}
