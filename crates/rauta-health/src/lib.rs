//! Health-aware endpoint choice for the userspace tier, shared by every proxy worker.
//!
//! For every backend of the serving route table this keeps the health of each endpoint and a Maglev table
//! over the healthy ones, which requests pick from:
//! - **Active checks** (when `rauta.io/health-check-path` is set): every `interval`, `GET path` on each
//!   endpoint; `unhealthy_threshold` failures in a row take it out, `healthy_threshold` passes bring it back.
//! - **Passive outlier ejection**: `consecutive_failures` failed requests in a row (connect refused or
//!   timed out, upstream connection error, 5xx answer) eject the endpoint for the base ejection time, n
//!   times that for the n-th ejection in a row (capped). When the time is up the endpoint is probed (the
//!   HTTP check if configured, else a TCP connect) and only readmitted if the probe passes; otherwise it
//!   is probed again after another base ejection time (so a restarted endpoint returns within about that
//!   long, while one that keeps failing real requests right after returning stays out longer each time).
//! - **Every endpoint unhealthy: fail open.** The backend's table then holds all its endpoints, as Envoy
//!   does below its panic threshold: a wrong health verdict (a broken check path, a shared dependency
//!   blip) must not turn into a full outage. It is logged once per transition and shown by
//!   `rauta_backend_fail_open{service}`.
//!
//! Concurrency: the request path only loads snapshots ([`arc_swap`]) and touches per-endpoint atomics; it
//! never locks and never builds a table. Tables are rebuilt by one control task ([`Health::follow`]) when
//! it is told that some endpoint changed, and swapped atomically; monitors (one task per endpoint) run on
//! the same control runtime. The control task also follows the route table, woken by
//! [`Health::table_swapped`] after every swap (it never polls): backends are matched to
//! their health by the identity of their `Arc<Backend>`, and the state of an endpoint survives reloads
//! while the same Service port keeps it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod endpoint;
mod metrics;
mod monitor;
mod probe;
mod selection;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use rauta_routes::backend::flow_hash;
use rauta_routes::{Backend, HealthPolicy, RouteTable, ServiceRef};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use endpoint::{millis, EndpointState};
use metrics::{EndpointLabels, HealthMetrics, ServiceLabels};
use selection::Selection;

/// Time allowed for the TCP probe of an ejected endpoint without an HTTP check.
const TCP_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Health of every backend of the serving table. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Health {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

/// What request paths, monitors and the control task share.
struct Shared {
    snapshot: ArcSwap<Snapshot>,
    /// Ejection times are milliseconds since this instant.
    epoch: Instant,
    /// Tells the control task that some endpoint's health changed.
    changed: Notify,
    metrics: HealthMetrics,
    /// Control-side only (never touched by requests): the endpoint monitors.
    monitors: Mutex<HashMap<(ServiceRef, SocketAddr), Monitor>>,
    /// Called by the control task after it applied a table or rebuilt pick tables (see
    /// [`Health::on_change`]).
    observer: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }
}

/// A running monitor and what it was started with.
struct Monitor {
    state: Arc<EndpointState>,
    policy: HealthPolicy,
    task: JoinHandle<()>,
}

/// Hashes a pointer-sized key with one multiplication (Fibonacci hashing): the per-request lookup by
/// backend address must not pay for SipHash, and keys are not chosen by clients.
#[derive(Default)]
struct PtrHasher(u64);

impl std::hash::Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        // Spread the (aligned, so low-zero) address over every bit; hashbrown uses both ends.
        let x = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 32);
    }
}

type PtrMap<V> = HashMap<usize, V, std::hash::BuildHasherDefault<PtrHasher>>;

/// The health of every backend of one route table.
#[derive(Default)]
struct Snapshot {
    /// By the address of the table's `Arc<Backend>`; each value holds that `Arc`, so the address cannot be
    /// reused by another backend while it is a key here.
    by_backend: PtrMap<Arc<ServiceHealth>>,
    /// The same values by Service port, to carry endpoint state over to the next table.
    by_service: HashMap<ServiceRef, Arc<ServiceHealth>>,
}

/// The health of one backend.
struct ServiceHealth {
    backend: Arc<Backend>,
    label: String,
    /// Parallel to `backend.endpoints`.
    endpoints: Vec<Arc<EndpointState>>,
    selection: ArcSwap<Selection>,
    retries: Counter,
    ejections: Counter,
    shared: Arc<Shared>,
}

/// How a request to an endpoint went, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer below 500.
    Success,
    /// Connect refused or timed out, the upstream connection failed, or a 5xx answer.
    Failure,
}

/// The endpoint chosen for one request, able to report how it went and to choose another one.
pub struct Pick {
    /// The endpoint to send to.
    pub endpoint: SocketAddr,
    /// `None` when the backend is not (yet) known to the health snapshot: plain Maglev pick, no reports.
    tracked: Option<(Arc<ServiceHealth>, usize)>,
}

impl Health {
    /// Empty health state; register its metrics with `registry`:
    /// `rauta_endpoint_healthy{service,endpoint}`, `rauta_endpoint_ejections_total{service}`,
    /// `rauta_upstream_retries_total{service}` and `rauta_backend_fail_open{service}`.
    pub fn new(registry: &mut Registry) -> Health {
        let metrics = HealthMetrics::default();
        metrics.register(registry);
        Health {
            shared: Arc::new(Shared {
                snapshot: ArcSwap::default(),
                epoch: Instant::now(),
                changed: Notify::new(),
                metrics,
                monitors: Mutex::default(),
                observer: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The endpoint for `client` on `backend`: Maglev over the backend's healthy endpoints (all of them
    /// when none is healthy); a backend the snapshot does not know yet (a table swapped in the last few
    /// milliseconds) uses its plain table. `None` when the backend has no endpoint. Lock-free.
    #[inline]
    pub fn pick(&self, backend: &Arc<Backend>, client: SocketAddr) -> Option<Pick> {
        let hash = flow_hash(client);
        let snapshot = self.shared.snapshot.load();
        let Some(service) = snapshot.by_backend.get(&(Arc::as_ptr(backend) as usize)) else {
            return backend.pick_by_hash(hash).map(|endpoint| Pick {
                endpoint,
                tracked: None,
            });
        };
        let index = service.selection.load().pick(hash)?;
        Some(Pick {
            endpoint: service.backend.endpoints[index],
            tracked: Some((service.clone(), index)),
        })
    }

    /// Apply a route table now: carry endpoint state over by Service port and endpoint, start and stop
    /// monitors, build every pick table. Must run inside a tokio runtime (monitors are spawned on it).
    pub fn update(&self, table: Arc<RouteTable>) {
        let shared = &self.shared;
        let old = shared.snapshot.load_full();
        let mut next = Snapshot::default();
        let backends = table
            .routes()
            .iter()
            .map(|r| &r.backend)
            .chain(table.default_backends().iter().map(|d| &d.backend));
        for backend in backends {
            let key = Arc::as_ptr(backend) as usize;
            if next.by_backend.contains_key(&key) {
                continue;
            }
            let previous = old.by_service.get(&backend.service);
            let endpoints: Vec<Arc<EndpointState>> = backend
                .endpoints
                .iter()
                .map(|&addr| {
                    previous
                        .and_then(|p| p.endpoints.iter().find(|e| e.addr == addr))
                        .cloned()
                        .unwrap_or_else(|| Arc::new(EndpointState::new(addr)))
                })
                .collect();
            let label = service_label(&backend.service);
            let service_labels = ServiceLabels {
                service: label.clone(),
            };
            let service = Arc::new(ServiceHealth {
                backend: backend.clone(),
                selection: ArcSwap::from_pointee(Selection::build(&endpoints)),
                endpoints,
                retries: shared
                    .metrics
                    .retries
                    .get_or_create(&service_labels)
                    .clone(),
                ejections: shared
                    .metrics
                    .ejections
                    .get_or_create(&service_labels)
                    .clone(),
                label,
                shared: shared.clone(),
            });
            service.publish(previous.map(|p| p.selection.load().fail_open));
            next.by_service
                .insert(backend.service.clone(), service.clone());
            next.by_backend.insert(key, service);
        }
        // Series of endpoints and services that left the table go away (bounded label sets).
        for (service_ref, gone) in &old.by_service {
            let kept = next.by_service.get(service_ref);
            for e in &gone.endpoints {
                if !kept.is_some_and(|k| k.endpoints.iter().any(|n| n.addr == e.addr)) {
                    shared.metrics.healthy.remove(&EndpointLabels {
                        service: gone.label.clone(),
                        endpoint: e.addr.to_string(),
                    });
                }
            }
            if kept.is_none() {
                shared.metrics.fail_open.remove(&ServiceLabels {
                    service: gone.label.clone(),
                });
            }
        }
        self.sync_monitors(&next);
        shared.snapshot.store(Arc::new(next));
    }

    /// Start monitors for endpoints that need one, restart those whose policy changed, stop the rest.
    fn sync_monitors(&self, next: &Snapshot) {
        let shared = &self.shared;
        let mut monitors = shared.monitors.lock().unwrap_or_else(|e| e.into_inner());
        let mut wanted: HashMap<(ServiceRef, SocketAddr), Monitor> = HashMap::new();
        for service in next.by_service.values() {
            let policy = &service.backend.health;
            if policy.active.is_none() && policy.outlier.consecutive_failures == 0 {
                continue;
            }
            for state in &service.endpoints {
                let key = (service.backend.service.clone(), state.addr);
                let reuse = monitors.remove(&key).filter(|m| {
                    &m.policy == policy && Arc::ptr_eq(&m.state, state) && !m.task.is_finished()
                });
                let monitor = match reuse {
                    Some(m) => m,
                    None => Monitor {
                        state: state.clone(),
                        policy: policy.clone(),
                        task: tokio::spawn(monitor::run(
                            Arc::downgrade(shared),
                            state.clone(),
                            policy.clone(),
                        )),
                    },
                };
                wanted.insert(key, monitor);
            }
        }
        for (_, stale) in monitors.drain() {
            stale.task.abort();
            // An endpoint that is gone, or whose checks stopped, must not stay marked down by them.
            let still_checked = wanted
                .values()
                .any(|m| Arc::ptr_eq(&m.state, &stale.state) && m.policy.active.is_some());
            if !still_checked {
                stale.state.set_active_ok(true);
            }
        }
        *monitors = wanted;
    }

    /// Calls `observer` on the control task each time it has applied a new table or rebuilt pick
    /// tables (an endpoint's health changed), so that another consumer of the pick tables (the kernel
    /// tiers, through [`Health::healthy_slots`]) follows them. One observer; later calls are ignored.
    /// It runs on the control task: keep it short and never block on a request path.
    pub fn on_change(&self, observer: impl Fn() + Send + Sync + 'static) {
        let _ = self.shared.observer.set(Box::new(observer));
    }

    /// The endpoint per Maglev slot that [`Health::pick`] chooses from for `backend`, when that is not
    /// the backend's own table: `Some` while some but not all of its endpoints are unhealthy (the
    /// table over the healthy ones), `None` when all are healthy or none is (failing open: all of them),
    /// or the backend is not in the applied table. Slot `maglev_slot(flow_hash, len)` of it is the
    /// endpoint `pick` returns for that flow.
    pub fn healthy_slots(&self, backend: &Arc<Backend>) -> Option<Vec<SocketAddr>> {
        let snapshot = self.shared.snapshot.load();
        let service = snapshot.by_backend.get(&(Arc::as_ptr(backend) as usize))?;
        let selection = service.selection.load();
        if selection.members.len() == service.endpoints.len() {
            return None;
        }
        Some(
            selection
                .maglev
                .slots()
                .iter()
                .filter_map(|&slot| selection.members.get(usize::from(slot)))
                .map(|&index| service.backend.endpoints[index])
                .collect(),
        )
    }

    /// Rebuild the pick tables whose healthy set changed since they were built.
    fn rebuild_changed(&self) {
        let snapshot = self.shared.snapshot.load();
        for service in snapshot.by_service.values() {
            let current = service.selection.load();
            if current.is_current(&service.endpoints) {
                continue;
            }
            let was_open = current.fail_open;
            service
                .selection
                .store(Arc::new(Selection::build(&service.endpoints)));
            service.publish(Some(was_open));
        }
    }

    /// Tell the control task that `routes` (the table given to [`Health::follow`]) holds a new table.
    /// Call after every swap: the task applies tables only when told. Cheap, never blocks; calls while
    /// the task is busy fold into one wake-up (it always applies the latest table).
    pub fn table_swapped(&self) {
        self.shared.changed.notify_one();
    }

    /// The control loop: apply the current table of `routes` at start and after every
    /// [`Health::table_swapped`], and rebuild pick tables as soon as an endpoint's health changes. Sleeps
    /// between those events. Runs until the task is dropped; spawn it on the control runtime, never on a
    /// serving worker.
    pub async fn follow(self, routes: Arc<ArcSwap<RouteTable>>) {
        let mut applied: Option<Arc<RouteTable>> = None;
        loop {
            let current = routes.load_full();
            if !applied.as_ref().is_some_and(|a| Arc::ptr_eq(a, &current)) {
                self.update(current.clone());
                applied = Some(current);
            }
            self.rebuild_changed();
            if let Some(observer) = self.shared.observer.get() {
                observer();
            }
            // `notify_one` keeps a permit when nobody waits, so a swap or a health change signalled while
            // this loop was busy wakes the next wait at once: nothing is missed between the checks above
            // and here.
            self.shared.changed.notified().await;
        }
    }

    /// Endpoint health as seen now, for tests and diagnostics: `(endpoint, healthy)` of the backend of
    /// `service`, in endpoint order.
    pub fn endpoints_of(&self, service: &ServiceRef) -> Vec<(SocketAddr, bool)> {
        let snapshot = self.shared.snapshot.load();
        snapshot
            .by_service
            .get(service)
            .map(|s| s.endpoints.iter().map(|e| (e.addr, e.healthy())).collect())
            .unwrap_or_default()
    }
}

impl ServiceHealth {
    /// Set the gauges from the current selection and log a change of the fail-open state.
    fn publish(&self, was_fail_open: Option<bool>) {
        let metrics = &self.shared.metrics;
        for e in &self.endpoints {
            let labels = EndpointLabels {
                service: self.label.clone(),
                endpoint: e.addr.to_string(),
            };
            metrics
                .healthy
                .get_or_create(&labels)
                .set(i64::from(e.healthy()));
        }
        let selection = self.selection.load();
        let fail_open = selection.fail_open;
        metrics
            .fail_open
            .get_or_create(&ServiceLabels {
                service: self.label.clone(),
            })
            .set(i64::from(fail_open));
        match (was_fail_open.unwrap_or(false), fail_open) {
            (false, true) => tracing::warn!(
                service = %self.label,
                endpoints = self.endpoints.len(),
                "every endpoint is unhealthy: failing open, requests go to all endpoints"
            ),
            (true, false) => tracing::info!(
                service = %self.label,
                healthy = selection.members.len(),
                "healthy endpoints again: no longer failing open"
            ),
            _ => {}
        }
    }
}

impl Pick {
    /// Report how the request went: failures count toward ejection; an ejection is applied to the pick
    /// table by the control task within moments.
    #[inline]
    pub fn report(&self, outcome: Outcome) {
        let Some((service, index)) = &self.tracked else {
            return;
        };
        let Some(state) = service.endpoints.get(*index) else {
            return;
        };
        match outcome {
            Outcome::Success => state.record_success(),
            Outcome::Failure => {
                let shared = &service.shared;
                if state.record_failure(&service.backend.health, shared.now_ms()) {
                    service.ejections.inc();
                    tracing::warn!(
                        service = %service.label,
                        endpoint = %state.addr,
                        "endpoint ejected after consecutive failed requests"
                    );
                    shared.changed.notify_one();
                }
            }
        }
    }

    /// Another endpoint of the same backend for a retry (counted in `rauta_upstream_retries_total`), or
    /// `None` if there is no other one.
    pub fn retry(&self) -> Option<Pick> {
        let (service, failed) = self.tracked.as_ref()?;
        let other = service
            .selection
            .load()
            .other_than(*failed, &service.endpoints)?;
        service.retries.inc();
        Some(Pick {
            endpoint: service.backend.endpoints[other],
            tracked: Some((service.clone(), other)),
        })
    }
}

/// `namespace/name:port`, as the proxy's request metrics label a Service port.
fn service_label(service: &ServiceRef) -> String {
    service.to_string()
}

#[cfg(test)]
mod tests;
