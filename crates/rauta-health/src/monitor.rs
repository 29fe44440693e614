//! One task per endpoint: runs the active checks and probes an ejected endpoint back when its ejection
//! time is up. Changes are announced to the control task, which rebuilds the pick table.

use std::sync::{Arc, Weak};
use std::time::Duration;

use rauta_routes::HealthPolicy;
use tokio::time::Instant;

use crate::endpoint::EndpointState;
use crate::{probe, Shared, TCP_PROBE_TIMEOUT};

/// Watch one endpoint until aborted (or until the health state is gone).
pub(crate) async fn run(shared: Weak<Shared>, state: Arc<EndpointState>, policy: HealthPolicy) {
    let active = policy.active.clone();
    // Spread the first checks of many endpoints over one interval instead of firing them together.
    let mut next_check = active
        .as_ref()
        .map(|a| Instant::now() + spread(&state, a.interval));
    let (mut passes, mut fails) = (0u32, 0u32);
    loop {
        let Some(epoch) = shared.upgrade().map(|s| s.epoch) else {
            return;
        };
        let ejection_end = state.ejected_until(epoch).map(Instant::from_std);
        let wake = match (next_check, ejection_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match wake {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = state.wake.notified() => continue,
                }
            }
            None => {
                state.wake.notified().await;
                continue;
            }
        }
        let now = Instant::now();
        let mut changed = false;
        let mut passed = None;
        if let (Some(check), Some(due)) = (&active, next_check) {
            if now >= due {
                let ok = probe::http(state.addr, &check.path, check.timeout).await;
                passed = Some(ok);
                next_check = Some(Instant::now() + check.interval);
                if ok {
                    passes = passes.saturating_add(1);
                    fails = 0;
                } else {
                    fails = fails.saturating_add(1);
                    passes = 0;
                }
                if !state.active_ok() && ok && passes >= check.healthy_threshold {
                    changed |= state.set_active_ok(true);
                    tracing::info!(endpoint = %state.addr, "endpoint passes its health checks again");
                } else if state.active_ok() && !ok && fails >= check.unhealthy_threshold {
                    changed |= state.set_active_ok(false);
                    tracing::warn!(endpoint = %state.addr, path = %check.path, "endpoint failed its health checks");
                }
            }
        }
        if ejection_end.is_some_and(|end| Instant::now() >= end) {
            // Probe back: the HTTP check (the one just run, if any), else a TCP connect.
            let ok = match (&active, passed) {
                (_, Some(ok)) => ok,
                (Some(check), None) => probe::http(state.addr, &check.path, check.timeout).await,
                (None, None) => probe::tcp(state.addr, TCP_PROBE_TIMEOUT).await,
            };
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if ok {
                state.readmit(shared.now_ms());
                changed = true;
                tracing::info!(endpoint = %state.addr, "ejected endpoint probed back in");
            } else {
                state.extend_ejection(&policy, shared.now_ms());
                tracing::debug!(endpoint = %state.addr, "ejected endpoint still failing its probe; probing again later");
            }
        }
        if changed {
            if let Some(shared) = shared.upgrade() {
                shared.changed.notify_one();
            }
        }
    }
}

/// A stable offset within `interval` from the endpoint's address.
fn spread(state: &EndpointState, interval: Duration) -> Duration {
    let h = rauta_routes::backend::flow_hash(state.addr);
    let ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(u64::from(h) % ms)
}
