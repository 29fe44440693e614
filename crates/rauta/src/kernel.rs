//! The kernel tiers in the binary: decide at startup whether they run, load and attach them, keep their
//! route maps in step with the serving table, and report their state (log, `/metrics`, `/routes`).
//!
//! Invariants:
//! - exactly one log line at startup says whether the kernel tiers are on, and if not, why;
//! - under `--kernel-tiers auto` every failure falls back to Tier 3 alone; under `required` it is fatal;
//! - a failed route-map update never stops Tier 3: it is logged and counted, and the next reload retries;
//! - the kernel's Maglev tables are Tier 3's pick tables: while some endpoints of a backend are
//!   unhealthy, both pick from the table over the healthy ones (`rauta_health`), so new connections
//!   avoid them in every tier alike; established splices are left alone;
//! - dropping [`KernelState`] detaches the programs (`KernelTiers`' own `Drop`), so the process must drop
//!   it on every exit path — `run` owns it for its whole life.

use std::collections::HashSet;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use rauta_dataplane::{KernelTiers, RouteReason, SkipReason, Skipped};
use rauta_routes::{Backend, RouteTable, Tier};

/// Status classes of Tier 1's request counters (`rauta_dataplane::StatusClasses::LABELS`).
const STATUS_CLASSES: usize = rauta_dataplane::StatusClasses::LABELS.len();

use crate::cli::{KernelTiers as Mode, XdpMode};

/// Where `net.ipv4.tcp_syncookies` lives for the current network namespace.
const SYNCOOKIES_SYSCTL: &str = "/proc/sys/net/ipv4/tcp_syncookies";

/// Why the kernel tiers are not running (the text of the one startup log line, or of the fatal error).
#[derive(Debug, thiserror::Error)]
pub enum Off {
    /// `--kernel-tiers off`.
    #[error("--kernel-tiers off")]
    Disabled,
    /// No `--interface` to attach to.
    #[error("no --interface given")]
    NoInterface,
    /// The VIP must be one IPv4 address: the XDP program matches a single address and port.
    #[error(
        "--http-listen {0} is not one specific IPv4 address and port (the kernel tiers serve one IPv4 VIP, e.g. --http-listen 192.0.2.10:80)"
    )]
    NotSpecificIpv4(SocketAddr),
    /// Privileges, BTF or kernel version.
    #[error("{0}")]
    Unavailable(#[from] rauta_dataplane::Unavailable),
    /// The sysctl could not be read or set.
    #[error("cannot set net.ipv4.tcp_syncookies=2 ({SYNCOOKIES_SYSCTL}): {0}")]
    Syncookies(std::io::Error),
    /// Loading or attaching failed.
    #[error("{0}")]
    Load(#[from] rauta_dataplane::DataplaneError),
}

/// The loaded kernel tiers and what the binary knows about them.
pub struct KernelState {
    /// `rauta_requests_total{tier="1"}` per status class (`StatusClasses::LABELS` order), kept in step
    /// with the kernel's `RAUTA_STATUS_CLASSES` at each scrape.
    tier1_requests: std::sync::OnceLock<[Counter; STATUS_CLASSES]>,
    tiers: Mutex<KernelTiers>,
    /// (host, path) of the routes the last successful `apply_routes` wrote, for `/routes`.
    live: Mutex<HashSet<(Option<String>, String)>>,
    /// Route-map updates that failed.
    apply_errors: Counter,
    /// Endpoint health, once [`KernelState::follow_health`] was called.
    health: std::sync::OnceLock<rauta_health::Health>,
    /// What the route maps were last written from. Its lock is held across a whole write, so that a
    /// reload and a health change never interleave (taken before `tiers`).
    applied: Mutex<Applied>,
}

/// The table the route maps were last written from, and the health tables used for it.
#[derive(Default)]
struct Applied {
    table: Option<Arc<RouteTable>>,
    health: HealthTables,
}

/// Backends (by `Arc` address) whose kernel slots come from health, with those slots; sorted.
type HealthTables = Vec<(usize, Vec<SocketAddr>)>;

impl std::fmt::Debug for KernelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelState").finish_non_exhaustive()
    }
}

/// Decides whether the kernel tiers run and loads them. Logs exactly one line about their state; returns
/// `Err` only under `--kernel-tiers required` (the reason, for a fatal error).
pub fn start(
    mode: Mode,
    interfaces: &[String],
    http_listen: SocketAddr,
    xdp_mode: XdpMode,
    nat_ports: Option<(u16, u16)>,
) -> Result<Option<KernelState>, Off> {
    match try_start(mode, interfaces, http_listen, xdp_mode, nat_ports) {
        Ok(state) => Ok(Some(state)),
        Err(Off::Disabled) => {
            tracing::info!("kernel tiers off: --kernel-tiers off; serving with Tier 3 only");
            Ok(None)
        }
        Err(why) if mode == Mode::Required => Err(why),
        Err(why) => {
            tracing::info!("kernel tiers off: {why}; serving with Tier 3 only");
            Ok(None)
        }
    }
}

fn try_start(
    mode: Mode,
    interfaces: &[String],
    http_listen: SocketAddr,
    xdp_mode: XdpMode,
    nat_ports: Option<(u16, u16)>,
) -> Result<KernelState, Off> {
    if mode == Mode::Off {
        return Err(Off::Disabled);
    }
    if interfaces.is_empty() {
        return Err(Off::NoInterface);
    }
    let vip = match http_listen {
        SocketAddr::V4(v4) if !v4.ip().is_unspecified() && v4.port() != 0 => v4,
        other => return Err(Off::NotSpecificIpv4(other)),
    };
    rauta_dataplane::kernel_tiers_available()?;
    ensure_syncookies_2()?;
    let attach = match xdp_mode {
        XdpMode::Auto => None,
        XdpMode::Driver => Some(rauta_dataplane::AttachMode::Driver),
        XdpMode::Generic => Some(rauta_dataplane::AttachMode::Skb),
    };
    let mut tiers = KernelTiers::load_in_mode(vip, interfaces, attach)?;
    tiers.set_splicing(nat_ports)?;
    log_on(&tiers, vip);
    if nat_ports.is_some() && !forwarding_enabled() {
        // The splice's FIB lookup refuses to forward from an interface without forwarding: every
        // routing hit would be counted `splice_no_path` and served by Tier 3.
        tracing::warn!(
            "net.ipv4.ip_forward is 0: Tier 1 cannot open backend connections (requests are served by \
             Tier 3); Kubernetes nodes normally have it on"
        );
    }
    Ok(KernelState {
        tier1_requests: std::sync::OnceLock::new(),
        tiers: Mutex::new(tiers),
        live: Mutex::new(HashSet::new()),
        apply_errors: Counter::default(),
        health: std::sync::OnceLock::new(),
        applied: Mutex::default(),
    })
}

/// Whether the namespace forwards IPv4 (the splice's FIB lookup needs it on the client-facing interface).
fn forwarding_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|v| v.trim() == "1")
        .unwrap_or(false)
}

/// The one "on" line: mode per interface and the VIP.
fn log_on(tiers: &KernelTiers, vip: SocketAddrV4) {
    let attached = tiers
        .attachments()
        .map(|(interface, mode)| {
            let mode = match mode {
                rauta_dataplane::AttachMode::Driver => "driver mode",
                rauta_dataplane::AttachMode::Skb => "generic mode",
            };
            format!("XDP ({mode}) on {interface}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    tracing::info!("kernel tiers on: {attached}, VIP {vip}; TC egress attached");
}

/// With `tcp_syncookies=2` the listener answers a replayed SYN with the same cookie Tier 1 sent, so a
/// handed-off connection needs no sequence translation (docs/kernel-tiers.md, "Sequence numbers").
/// Setting it affects only this network namespace; it is logged because it changes the host's TCP.
fn ensure_syncookies_2() -> Result<(), Off> {
    let current = std::fs::read_to_string(SYNCOOKIES_SYSCTL).map_err(Off::Syncookies)?;
    if current.trim() == "2" {
        return Ok(());
    }
    std::fs::write(SYNCOOKIES_SYSCTL, "2\n").map_err(Off::Syncookies)?;
    tracing::info!(
        previous = current.trim(),
        "set net.ipv4.tcp_syncookies=2 in this network namespace, so that the listener's SYN cookies match XDP's"
    );
    Ok(())
}

impl KernelState {
    /// Counts Tier 1 requests in `counters` (the proxy's `rauta_requests_total{tier="1"}` series, one per
    /// status class in `StatusClasses::LABELS` order) from now on; see
    /// [`KernelState::sync_request_counters`].
    pub fn count_requests_in(&self, counters: [Counter; STATUS_CLASSES]) {
        let _ = self.tier1_requests.set(counters);
    }

    /// Brings `rauta_requests_total{tier="1"}` up to the kernel's count of Tier 1 responses per status
    /// class (called before each scrape: the counts live in a per-CPU BPF map). A request is counted
    /// when its response head passes the kernel (by the status it reads), or, on a splice whose
    /// responses the kernel no longer follows, when it is forwarded (`code_class="unknown"`).
    pub fn sync_request_counters(&self) {
        let Some(counters) = self.tier1_requests.get() else {
            return;
        };
        let classes = {
            let tiers = match self.tiers.lock() {
                Ok(tiers) => tiers,
                Err(poisoned) => poisoned.into_inner(),
            };
            tiers.status_classes()
        };
        match classes {
            Ok(classes) => {
                for (counter, (_, total)) in counters.iter().zip(classes.iter()) {
                    let seen = counter.get();
                    if total > seen {
                        counter.inc_by(total - seen);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the kernel's response status counters")
            }
        }
    }

    /// Writes `table`'s Tier 1 routes into the kernel, each backend's slots as Tier 3 picks now (see
    /// [`KernelState::follow_health`]). An error is logged and counted; Tier 3 keeps serving the whole
    /// table either way.
    pub fn apply_routes(&self, table: &Arc<RouteTable>) {
        let mut applied = lock(&self.applied);
        let health = self.health_tables(table);
        self.write(&mut applied, table, health);
    }

    /// Makes the kernel's Maglev tables follow `health`'s pick tables from now on: rewritten (a new
    /// bank, switched atomically like a reload) whenever the set of unhealthy endpoints of a Tier 1
    /// backend changes.
    pub fn follow_health(self: &Arc<Self>, health: &rauta_health::Health) {
        let _ = self.health.set(health.clone());
        let kernel = Arc::downgrade(self);
        health.on_change(move || {
            if let Some(kernel) = kernel.upgrade() {
                kernel.health_changed();
            }
        });
    }

    /// Called by the health task after it applied a table or rebuilt pick tables: rewrites the route
    /// maps if a Tier 1 backend's table changed.
    fn health_changed(&self) {
        let mut applied = lock(&self.applied);
        let Some(table) = applied.table.clone() else {
            return;
        };
        let health = self.health_tables(&table);
        if health == applied.health {
            return;
        }
        let (was, now) = (applied.health.len(), health.len());
        self.write(&mut applied, &table, health);
        tracing::info!(
            backends_with_unhealthy_endpoints = now,
            before = was,
            "kernel Maglev tables follow endpoint health"
        );
    }

    /// The health tables of `table`'s Tier 1 backends that are not their own tables.
    fn health_tables(&self, table: &RouteTable) -> HealthTables {
        let Some(health) = self.health.get() else {
            return HealthTables::new();
        };
        let mut seen = HashSet::new();
        let mut tables: HealthTables = table
            .routes()
            .iter()
            .filter(|r| r.tier == Tier::Xdp && seen.insert(Arc::as_ptr(&r.backend) as usize))
            .filter_map(|r| {
                health
                    .healthy_slots(&r.backend)
                    .map(|slots| (Arc::as_ptr(&r.backend) as usize, slots))
            })
            .collect();
        tables.sort();
        tables
    }

    fn write(&self, applied: &mut Applied, table: &Arc<RouteTable>, health: HealthTables) {
        let mut tiers = lock(&self.tiers);
        let healthy = |backend: &Arc<Backend>| {
            let key = Arc::as_ptr(backend) as usize;
            health
                .iter()
                .find(|(b, _)| *b == key)
                .map(|(_, slots)| slots.clone())
        };
        match tiers.apply_routes_with_health(table, &healthy) {
            Ok(done) => {
                tracing::debug!(
                    routes = done.routes,
                    services = done.services,
                    slots = done.slots,
                    removed_routes = done.removed_routes,
                    skipped = done.skipped.len(),
                    health_tables = health.len(),
                    "kernel route maps updated"
                );
                *self.live_lock() = live_routes(table, &done.skipped);
                applied.table = Some(table.clone());
                applied.health = health;
            }
            Err(error) => {
                self.apply_errors.inc();
                // The maps may hold a mix of old and new routes: claim none live until a retry succeeds.
                self.live_lock().clear();
                // Retried with the next reload or health change.
                applied.table = Some(table.clone());
                applied.health = HealthTables::new();
                tracing::warn!(%error, "cannot update the kernel route maps; Tier 3 serves every route");
            }
        }
    }

    /// Whether the route for (host, path) is in the kernel's route maps.
    pub fn is_live(&self, host: Option<&str>, path: &str) -> bool {
        self.live_lock()
            .contains(&(host.map(str::to_owned), path.to_owned()))
    }

    fn live_lock(&self) -> std::sync::MutexGuard<'_, HashSet<(Option<String>, String)>> {
        lock(&self.live)
    }
}

/// The guarded value, also after a panic elsewhere (every value here stays consistent: each is
/// replaced whole).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// (host, path) of the routes `apply_routes` wrote: the Tier 1 (XDP) routes it did not skip. Skips of
/// other tiers' routes are ignored, so that a Prefix route with the same host and path as an Exact one
/// does not hide the Exact one. (Two Exact routes with the same host and path, one shadowed, share a key
/// and show as not live: a rare conflict the compiler already reports.)
fn live_routes(table: &RouteTable, skipped: &[Skipped]) -> HashSet<(Option<String>, String)> {
    let skipped: HashSet<(Option<String>, String)> = skipped
        .iter()
        .filter(|s| s.why != SkipReason::NotXdpTier)
        .map(|s| (s.host.clone(), s.path.clone()))
        .collect();
    table
        .routes()
        .iter()
        .filter(|r| r.tier == Tier::Xdp)
        .map(|r| (r.host.clone(), r.path.clone()))
        .filter(|key| !skipped.contains(key))
        .collect()
}

/// Registers the kernel metrics. `state` is `None` when the kernel tiers are off: the gauge says 0 and
/// no counters are exported.
pub fn register_metrics(registry: &mut Registry, state: Option<Arc<KernelState>>) {
    registry.register_collector(Box::new(KernelCollector { state }));
}

/// Reads the kernel's counters at scrape time (they live in per-CPU BPF maps, not in this process).
#[derive(Debug)]
struct KernelCollector {
    state: Option<Arc<KernelState>>,
}

impl Collector for KernelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let enabled = ConstGauge::new(i64::from(self.state.is_some()));
        enabled.encode(encoder.encode_descriptor(
            "rauta_kernel_tiers_enabled",
            "1 if the kernel tiers (XDP/TC) are loaded and attached, else 0",
            None,
            enabled.metric_type(),
        )?)?;
        let Some(state) = &self.state else {
            return Ok(());
        };
        let errors = ConstCounter::new(state.apply_errors.get());
        errors.encode(encoder.encode_descriptor(
            "rauta_kernel_route_update_errors",
            "Kernel route-map updates that failed (Tier 3 keeps serving every route)",
            None,
            errors.metric_type(),
        )?)?;
        let (packets, routes, splices, latency) = {
            let tiers = match state.tiers.lock() {
                Ok(tiers) => tiers,
                Err(poisoned) => poisoned.into_inner(),
            };
            (
                tiers.counters(),
                tiers.route_counters(),
                tiers.splice_sizes(),
                tiers.first_request_latency(),
            )
        };
        match splices {
            Ok((active, nat_ports)) => {
                for (name, help, value) in [
                    (
                        "rauta_kernel_active_splices",
                        "Client connections spliced to a backend in the kernel (Tier 1) right now",
                        active,
                    ),
                    (
                        "rauta_kernel_nat_ports_in_use",
                        "Source-NAT ports held by Tier 1 splices",
                        nat_ports,
                    ),
                ] {
                    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                    gauge.encode(encoder.encode_descriptor(
                        name,
                        help,
                        None,
                        gauge.metric_type(),
                    )?)?;
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the kernel splice tables"),
        }
        match latency {
            Ok(latency) => {
                // Bucket k of the kernel's histogram holds runs below 2^k ns; buckets 6..=20 (64 ns to
                // 1 ms) are exported with their upper bounds, the rest folded into the neighbours.
                let mut buckets: Vec<(f64, u64)> = Vec::new();
                let mut pending = 0;
                for (k, n) in latency.buckets.iter().enumerate() {
                    pending += n;
                    if (6..=20).contains(&k) {
                        buckets.push(((1u64 << k) as f64 / 1e9, pending));
                        pending = 0;
                    }
                }
                buckets.push((f64::MAX, pending));
                let mut metric = encoder.encode_descriptor(
                    "rauta_kernel_first_request_duration_seconds",
                    "XDP run time on Tier 1 first requests (routing hits): from the cookie check to the \
                     verdict, route decision and splice start included",
                    None,
                    prometheus_client::metrics::MetricType::Histogram,
                )?;
                metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    latency.sum_ns as f64 / 1e9,
                    latency.count(),
                    &buckets,
                    None,
                )?;
            }
            Err(error) => tracing::warn!(%error, "cannot read the kernel latency histogram"),
        }
        match packets {
            Ok(counters) => {
                let mut family = encoder.encode_descriptor(
                    "rauta_kernel_packets",
                    "Packets seen by the kernel tiers' XDP and TC programs, by what they did",
                    None,
                    prometheus_client::metrics::MetricType::Counter,
                )?;
                // Labels: Reason::ALL's stable names, a bounded set.
                for (reason, value) in counters.iter() {
                    let labels = [("reason", reason.name())];
                    ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the kernel packet counters"),
        }
        match routes {
            Ok(counters) => {
                let mut family = encoder.encode_descriptor(
                    "rauta_kernel_route_decisions",
                    "First requests the kernel tiers routed, by outcome (tier1_route_hit: a Tier 1 route matched)",
                    None,
                    prometheus_client::metrics::MetricType::Counter,
                )?;
                for reason in RouteReason::ALL {
                    let labels = [("reason", reason.name())];
                    ConstCounter::new(counters.get(reason))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the kernel route counters"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `start` with no interface, a valid VIP and the default attach mode and NAT ports.
    fn start_without_interfaces(mode: Mode) -> Result<Option<KernelState>, Off> {
        start(
            mode,
            &[],
            "192.0.2.1:80".parse().unwrap(),
            XdpMode::Auto,
            None,
        )
    }

    #[test]
    fn off_and_missing_interface_are_reasons_not_errors_under_auto() {
        assert!(matches!(start_without_interfaces(Mode::Off), Ok(None)));
        assert!(matches!(start_without_interfaces(Mode::Auto), Ok(None)));
        assert!(matches!(
            start_without_interfaces(Mode::Required),
            Err(Off::NoInterface)
        ));
    }

    #[test]
    fn the_vip_must_be_one_ipv4_address() {
        let lo = vec!["lo".to_string()];
        for addr in ["0.0.0.0:80", "[::1]:80", "[::]:80"] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert!(matches!(
                try_start(Mode::Required, &lo, addr, XdpMode::Auto, None),
                Err(Off::NotSpecificIpv4(_))
            ));
        }
    }

    #[test]
    fn metrics_say_disabled_without_state() {
        let mut registry = Registry::default();
        register_metrics(&mut registry, None);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("rauta_kernel_tiers_enabled 0"), "{text}");
        assert!(!text.contains("rauta_kernel_packets"), "{text}");
    }
}
