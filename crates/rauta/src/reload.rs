//! Live reload: debounce change notifications, reload, swap the table if the load is clean.
//!
//! Invariant: the serving table only ever changes to the result of a clean load (every file read, every
//! document parsed). Requests already matched keep their `Arc` of the old table's backend, so a swap never
//! disturbs in-flight requests or open connections.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rauta_routes::{CompileOptions, RouteTable};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::config_metrics::{ConfigMetrics, ReloadResult};
use crate::load::{load, Loaded};
use crate::watch::ManifestWatcher;

/// Under a never-ending stream of writes, reload at least this often anyway.
const MAX_DEBOUNCE_DELAY_FACTOR: u32 = 10;

/// Reloads the configuration when told that a manifest changed.
pub struct Reloader {
    /// The `--manifests` paths.
    pub paths: Vec<PathBuf>,
    /// Compiler settings from the command line.
    pub options: CompileOptions,
    /// The serving table.
    pub table: Arc<ArcSwap<RouteTable>>,
    /// The kernel tiers, if loaded: their route maps follow every table swap.
    pub kernel: Option<Arc<crate::kernel::KernelState>>,
    /// The HTTPS certificates: rebuilt from the same objects as the table, swapped right after it.
    pub tls: Option<Arc<rauta_tls::TlsCertificates>>,
    /// Endpoint health: told of every table swap (see [`install`]).
    pub health: Option<rauta_health::Health>,
    /// Reload counters.
    pub metrics: ConfigMetrics,
    /// Quiet time after the last change before reloading.
    pub debounce: Duration,
    /// The current watch on `paths`, rebuilt after every reload (see [`Reloader::rewatch`]).
    pub watcher: ManifestWatcher,
    /// Where the watcher sends change notifications (the other end is `run`'s receiver).
    pub changes: mpsc::Sender<()>,
}

impl Reloader {
    /// Run until `changes` closes.
    pub async fn run(mut self, mut changes: mpsc::Receiver<()>) {
        while changes.recv().await.is_some() {
            let first = Instant::now();
            let latest = first + self.debounce * MAX_DEBOUNCE_DELAY_FACTOR;
            let mut deadline = first + self.debounce;
            loop {
                tokio::select! {
                    more = changes.recv() => match more {
                        Some(()) => deadline = (Instant::now() + self.debounce).min(latest),
                        None => return,
                    },
                    () = sleep_until(deadline) => break,
                }
            }
            self.reload_now().await;
            self.rewatch();
        }
    }

    /// Replace the watcher with a fresh one. inotify watches follow inodes: a `--manifests` directory
    /// that was deleted and re-created (or renamed over) would otherwise never report again. The new
    /// watcher is created before the old one is dropped, so no change goes unseen in between; a duplicate
    /// notification only costs one extra reload.
    fn rewatch(&mut self) {
        match crate::watch::watch(&self.paths, self.changes.clone()) {
            Ok(watcher) => self.watcher = watcher,
            Err(error) => {
                tracing::warn!(%error, "cannot renew the manifest watch; keeping the current one")
            }
        }
    }

    /// Load and apply; returns whether the new table is serving.
    pub async fn reload_now(&self) -> bool {
        let paths = self.paths.clone();
        let options = self.options.clone();
        let loaded = match tokio::task::spawn_blocking(move || load(&paths, &options)).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(%error, "configuration reload failed unexpectedly; keeping the current configuration");
                self.metrics.record_reload(ReloadResult::Failed);
                return false;
            }
        };
        self.apply(loaded)
    }

    fn apply(&self, loaded: Loaded) -> bool {
        loaded.log_problems(!loaded.is_clean());
        if !loaded.is_clean() {
            let problems = loaded.read_errors.len() + loaded.manifest_errors.len();
            tracing::error!(
                problems,
                "configuration reload failed: {problems} manifest problem(s) above; keeping the current configuration"
            );
            self.metrics.record_reload(ReloadResult::Failed);
            return false;
        }
        let routes = install(
            &self.table,
            self.kernel.as_deref(),
            self.health.as_ref(),
            &self.metrics,
            loaded.compiled.table,
        );
        if let Some(tls) = &self.tls {
            tls.update(&loaded.inputs);
        }
        tracing::info!(
            files = loaded.files,
            routes,
            diagnostics = loaded.compiled.diagnostics.len(),
            "configuration reloaded"
        );
        true
    }
}

/// Swap a new table in: the proxy's, then the kernel tiers' route maps, then endpoint health (its control
/// task is woken to follow the new table), then the metrics. Shared by every configuration source (files,
/// Kubernetes), so that they all reach the data plane the same way. Returns the number of routes.
pub fn install(
    serving: &ArcSwap<RouteTable>,
    kernel: Option<&crate::kernel::KernelState>,
    health: Option<&rauta_health::Health>,
    metrics: &ConfigMetrics,
    table: RouteTable,
) -> usize {
    let routes = table.routes().len();
    let table = Arc::new(table);
    let old = serving.swap(table.clone());
    // Freeing a large table (10,000 routes: milliseconds) is no reason to delay what comes next on the
    // control thread; whoever holds the last reference frees it, here the blocking pool.
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(move || drop(old))),
        Err(_) => drop(old),
    }
    if let Some(kernel) = kernel {
        kernel.apply_routes(&table);
    }
    if let Some(health) = health {
        health.table_swapped();
    }
    metrics.record_reload(ReloadResult::Ok);
    metrics.record_clean_load();
    metrics.set_routes(routes);
    routes
}
