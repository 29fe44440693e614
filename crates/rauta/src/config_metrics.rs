//! Metrics about configuration loading: reload outcomes, the time of the last good one, the size of the table.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The outcome of a reload, a bounded label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new table is serving.
    Ok,
    /// The old table is still serving.
    Failed,
}

impl ReloadResult {
    fn label(self) -> &'static str {
        match self {
            ReloadResult::Ok => "ok",
            ReloadResult::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

/// Configuration metrics; cheap to clone (every metric is shared).
#[derive(Debug, Clone, Default)]
pub struct ConfigMetrics {
    reloads: Family<ReloadLabels, Counter>,
    last_success: Gauge<f64, AtomicU64>,
    routes: Gauge,
}

impl ConfigMetrics {
    /// Create the metrics and register them (names are final, the registry must not add a prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        // Both outcomes exist from the start so that `rate(...{result="failed"}[5m])` alerts see a zero.
        for result in [ReloadResult::Ok, ReloadResult::Failed] {
            let _ = metrics.reloads.get_or_create(&ReloadLabels {
                result: result.label(),
            });
        }
        registry.register(
            "rauta_config_reloads",
            "Configuration reloads after a manifest change, by result (failed: the old configuration is kept)",
            metrics.reloads.clone(),
        );
        registry.register(
            "rauta_config_last_reload_success_timestamp_seconds",
            "Unix time of the last configuration load that was applied without errors",
            metrics.last_success.clone(),
        );
        registry.register(
            "rauta_config_routes",
            "Routes in the serving route table",
            metrics.routes.clone(),
        );
        metrics
    }

    /// Count a reload attempt.
    pub fn record_reload(&self, result: ReloadResult) {
        self.reloads
            .get_or_create(&ReloadLabels {
                result: result.label(),
            })
            .inc();
    }

    /// A configuration without errors is now serving.
    pub fn record_clean_load(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.last_success.set(now);
    }

    /// The serving table has `count` routes.
    pub fn set_routes(&self, count: usize) {
        self.routes.set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_outcomes_are_exported_with_bounded_labels() {
        let mut registry = Registry::default();
        let metrics = ConfigMetrics::register(&mut registry);
        metrics.record_reload(ReloadResult::Failed);
        metrics.record_reload(ReloadResult::Failed);
        metrics.record_reload(ReloadResult::Ok);
        metrics.record_clean_load();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("rauta_config_reloads_total{result=\"failed\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("rauta_config_reloads_total{result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("rauta_config_last_reload_success_timestamp_seconds 0.0"),
            "{text}"
        );
    }
}
