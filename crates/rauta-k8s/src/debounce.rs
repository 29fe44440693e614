//! Turn a stream of change notifications into few snapshots: publish after a quiet period, or after a
//! maximum delay under a steady stream of changes.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use crate::cache::Cache;
use crate::{Snapshot, WatchConfig};

/// Run until the receiver side is gone.
pub async fn run(cache: Arc<Cache>, config: WatchConfig, tx: watch::Sender<Option<Snapshot>>) {
    let mut generation = 0;
    loop {
        cache.changed.notified().await;
        let first = Instant::now();
        let latest = first + config.max_delay;
        let mut deadline = (first + config.quiet).min(latest);
        loop {
            tokio::select! {
                () = cache.changed.notified() => deadline = (Instant::now() + config.quiet).min(latest),
                () = sleep_until(deadline) => break,
            }
        }
        let started = Instant::now();
        let Some((inputs, status)) = cache.snapshot(&config.ingress_class) else {
            // A list is incomplete; its completion notifies again.
            continue;
        };
        generation += 1;
        tracing::debug!(generation, took = ?started.elapsed(), waited = ?started.duration_since(first), "snapshot taken");
        if tx
            .send(Some(Snapshot {
                inputs: Arc::new(inputs),
                ingress_status: Arc::new(status),
                generation,
            }))
            .is_err()
        {
            return;
        }
    }
}
