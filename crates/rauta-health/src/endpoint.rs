//! The health of one endpoint of one backend: lock-free state written by the request path (passive
//! outcomes) and by the endpoint's monitor (active checks, ejection expiry), read by the table builder.
//!
//! Invariants: `ejected_until` is 0 exactly when the endpoint is not ejected; only the monitor clears it
//! (after the ejection time passed and a probe succeeded), so an ejected endpoint never returns unprobed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rauta_routes::health_policy::HealthPolicy;
use tokio::sync::Notify;

/// Health state of one endpoint.
#[derive(Debug)]
pub(crate) struct EndpointState {
    /// The endpoint.
    pub(crate) addr: SocketAddr,
    /// Consecutive failed requests (connect failure, upstream error, 5xx) since the last success.
    failures: AtomicU32,
    /// Milliseconds since the epoch until which the endpoint is ejected; 0: not ejected.
    ejected_until: AtomicU64,
    /// Ejections in a row (the n-th lasts n times the base time); reset after a long healthy stretch.
    ejections_in_row: AtomicU32,
    /// When the endpoint last came back from an ejection (ms since the epoch).
    returned_at: AtomicU64,
    /// The active check's verdict (true until checks say otherwise; true without checks).
    active_ok: AtomicBool,
    /// Wakes the monitor when the request path ejects the endpoint.
    pub(crate) wake: Notify,
}

impl EndpointState {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections_in_row: AtomicU32::new(0),
            returned_at: AtomicU64::new(0),
            active_ok: AtomicBool::new(true),
            wake: Notify::new(),
        }
    }

    /// Usable for new requests: passing active checks and not ejected.
    pub(crate) fn healthy(&self) -> bool {
        self.active_ok.load(Ordering::Relaxed) && !self.ejected()
    }

    /// Currently ejected by outlier detection.
    pub(crate) fn ejected(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) != 0
    }

    /// When the current ejection ends, as an instant, if ejected.
    pub(crate) fn ejected_until(&self, epoch: Instant) -> Option<Instant> {
        match self.ejected_until.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(epoch + Duration::from_millis(ms)),
        }
    }

    /// A request succeeded: the failure streak ends. Written only when it changes, so the common case is a
    /// read of a shared cache line, not a write.
    #[inline]
    pub(crate) fn record_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// A request failed. Returns true if this failure ejected the endpoint.
    pub(crate) fn record_failure(&self, policy: &HealthPolicy, now_ms: u64) -> bool {
        let threshold = policy.outlier.consecutive_failures;
        let streak = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if threshold == 0 || streak < threshold || self.ejected() {
            return false;
        }
        self.eject(policy, now_ms)
    }

    /// Eject now (again): the n-th ejection in a row lasts n times the base, at most the maximum. Returns
    /// false if another thread ejected it first.
    pub(crate) fn eject(&self, policy: &HealthPolicy, now_ms: u64) -> bool {
        let outlier = &policy.outlier;
        // After a healthy stretch as long as the longest ejection, the count starts over.
        let returned = self.returned_at.load(Ordering::Relaxed);
        let max_ms = millis(outlier.max_ejection_time);
        if returned != 0 && now_ms.saturating_sub(returned) > max_ms {
            self.ejections_in_row.store(0, Ordering::Relaxed);
        }
        let n = self
            .ejections_in_row
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let length = millis(outlier.base_ejection_time)
            .saturating_mul(u64::from(n))
            .min(max_ms);
        // At least 1 so that the stored value is never the "not ejected" 0.
        let until = now_ms.saturating_add(length).max(1);
        let current = self.ejected_until.load(Ordering::Relaxed);
        let ok = self
            .ejected_until
            .compare_exchange(current, until, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            self.wake.notify_one();
        }
        ok
    }

    /// Keep an ejected endpoint out for one more base ejection time (its probe back failed). The count of
    /// ejections in a row does not grow: a dead endpoint is probed every base time, so that it returns
    /// within about that long once it answers again.
    pub(crate) fn extend_ejection(&self, policy: &HealthPolicy, now_ms: u64) {
        let until = now_ms
            .saturating_add(millis(policy.outlier.base_ejection_time))
            .max(1);
        self.ejected_until.store(until, Ordering::Relaxed);
    }

    /// End an ejection (the monitor's probe succeeded).
    pub(crate) fn readmit(&self, now_ms: u64) {
        self.failures.store(0, Ordering::Relaxed);
        self.returned_at.store(now_ms.max(1), Ordering::Relaxed);
        self.ejected_until.store(0, Ordering::Relaxed);
    }

    /// Set the active checks' verdict; returns whether it changed.
    pub(crate) fn set_active_ok(&self, ok: bool) -> bool {
        self.active_ok.swap(ok, Ordering::Relaxed) != ok
    }

    /// The active checks' verdict.
    pub(crate) fn active_ok(&self) -> bool {
        self.active_ok.load(Ordering::Relaxed)
    }
}

/// Whole milliseconds of a duration, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rauta_routes::health_policy::OutlierDetection;

    fn policy(failures: u32) -> HealthPolicy {
        HealthPolicy {
            active: None,
            outlier: OutlierDetection {
                consecutive_failures: failures,
                base_ejection_time: Duration::from_secs(1),
                max_ejection_time: Duration::from_secs(3),
            },
        }
    }

    #[test]
    fn consecutive_failures_eject_and_success_resets_the_streak() {
        let e = EndpointState::new("127.0.0.1:1".parse().unwrap());
        let p = policy(3);
        assert!(!e.record_failure(&p, 10));
        assert!(!e.record_failure(&p, 10));
        e.record_success();
        assert!(!e.record_failure(&p, 10));
        assert!(!e.record_failure(&p, 10));
        assert!(e.healthy());
        assert!(e.record_failure(&p, 10));
        assert!(!e.healthy());
        // Already ejected: more failures do not eject again.
        for _ in 0..5 {
            assert!(!e.record_failure(&p, 20));
        }
        let epoch = Instant::now();
        assert_eq!(
            e.ejected_until(epoch),
            Some(epoch + Duration::from_millis(1010))
        );
    }

    #[test]
    fn ejections_grow_up_to_the_maximum_and_reset_after_a_healthy_stretch() {
        let e = EndpointState::new("127.0.0.1:1".parse().unwrap());
        let p = policy(1);
        let epoch = Instant::now();
        let until = |e: &EndpointState| e.ejected_until(epoch).unwrap() - epoch;
        assert!(e.eject(&p, 0));
        assert_eq!(until(&e), Duration::from_secs(1));
        assert!(e.eject(&p, 0));
        assert_eq!(until(&e), Duration::from_secs(2));
        assert!(e.eject(&p, 0));
        assert!(e.eject(&p, 0));
        assert_eq!(until(&e), Duration::from_secs(3), "capped");
        e.extend_ejection(&p, 5_000);
        assert_eq!(until(&e), Duration::from_secs(6), "one more base time");
        e.readmit(10_000);
        assert!(e.healthy());
        assert!(e.record_failure(&p, 20_000));
        assert_eq!(until(&e), Duration::from_secs(21), "count started over");
    }

    #[test]
    fn zero_threshold_never_ejects() {
        let e = EndpointState::new("127.0.0.1:1".parse().unwrap());
        for _ in 0..100 {
            assert!(!e.record_failure(&policy(0), 1));
        }
        assert!(e.healthy());
    }
}
