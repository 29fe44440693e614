//! A snapshot of the XDP program's per-reason packet counters, summed over CPUs.

use rauta_common::{
    maps::{STATUS_CLASS_SLOTS, STATUS_CLASS_UNKNOWN},
    reason::Reason,
    route::RouteReason,
};

/// Packets counted per [`Reason`] since the program was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    values: [u64; Reason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            values: [0; Reason::COUNT],
        }
    }
}

impl Counters {
    /// Builds a snapshot from values indexed by reason code.
    pub(crate) fn from_values(values: [u64; Reason::COUNT]) -> Self {
        Counters { values }
    }

    /// The count for one reason.
    pub fn get(&self, reason: Reason) -> u64 {
        self.values[reason.index() as usize]
    }

    /// Every reason with its count, in code order (for metrics: the names are stable labels).
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL.iter().map(|&r| (r, self.get(r)))
    }

    /// The change from `earlier` to `self`, per reason (saturating: counters only grow).
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut values = [0; Reason::COUNT];
        for (i, v) in values.iter_mut().enumerate() {
            *v = self.values[i].saturating_sub(earlier.values[i]);
        }
        Counters { values }
    }

    /// Reasons with a non-zero count (readable test failures and logs).
    pub fn non_zero(&self) -> Vec<(&'static str, u64)> {
        self.iter()
            .filter(|(_, v)| *v != 0)
            .map(|(r, v)| (r.name(), v))
            .collect()
    }
}

/// Routing decisions of first data segments per [`RouteReason`] since the program was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteCounters {
    values: [u64; RouteReason::COUNT],
}

impl RouteCounters {
    /// Builds a snapshot from values indexed by reason code.
    pub(crate) fn from_values(values: [u64; RouteReason::COUNT]) -> Self {
        RouteCounters { values }
    }

    /// The count for one reason.
    pub fn get(&self, reason: RouteReason) -> u64 {
        self.values[reason.index() as usize]
    }

    /// The change from `earlier` to `self`, per reason (saturating).
    pub fn since(&self, earlier: &RouteCounters) -> RouteCounters {
        let mut values = [0; RouteReason::COUNT];
        for (i, v) in values.iter_mut().enumerate() {
            *v = self.values[i].saturating_sub(earlier.values[i]);
        }
        RouteCounters { values }
    }

    /// Reasons with a non-zero count, by name.
    pub fn non_zero(&self) -> Vec<(&'static str, u64)> {
        RouteReason::ALL
            .iter()
            .map(|&r| (r.name(), self.get(r)))
            .filter(|(_, v)| *v != 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_subtracts_per_reason() {
        let mut a = [0; Reason::COUNT];
        let mut b = [0; Reason::COUNT];
        a[Reason::SynCookieSent.index() as usize] = 3;
        b[Reason::SynCookieSent.index() as usize] = 5;
        b[Reason::NotVipPass.index() as usize] = 1;
        let d = Counters::from_values(b).since(&Counters::from_values(a));
        assert_eq!(d.get(Reason::SynCookieSent), 2);
        assert_eq!(
            d.non_zero(),
            vec![("not_vip_pass", 1), ("syn_cookie_sent", 2)]
        );
    }
}

/// Tier 1's responses per status class since the program was loaded (see
/// `rauta_common::maps::STATUS_CLASSES_MAP`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusClasses {
    values: [u64; STATUS_CLASS_SLOTS as usize],
}

impl StatusClasses {
    /// The status class labels, in slot order (`code_class` of `rauta_requests_total`).
    pub const LABELS: [&'static str; STATUS_CLASS_SLOTS as usize] =
        ["unknown", "1xx", "2xx", "3xx", "4xx", "5xx"];

    /// Builds a snapshot from values indexed by slot.
    pub(crate) fn from_values(values: [u64; STATUS_CLASS_SLOTS as usize]) -> Self {
        StatusClasses { values }
    }

    /// Responses of status class `class` (1-5: 1xx-5xx); 0 or anything above 5: of unknown status.
    pub fn get(&self, class: u32) -> u64 {
        let slot = if class < STATUS_CLASS_SLOTS {
            class
        } else {
            STATUS_CLASS_UNKNOWN
        };
        self.values[slot as usize]
    }

    /// Every class's label with its count, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Self::LABELS
            .iter()
            .copied()
            .zip(self.values.iter().copied())
    }
}
