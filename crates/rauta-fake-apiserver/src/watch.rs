//! `?watch=1`: a stream of JSON lines, one watch event each, fed by the store's broadcast.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::resources::RESOURCES;
use crate::store::{Filter, Record, Store, WatchFrom};

/// Options of one watch.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// How often a bookmark is sent (when allowed).
    pub bookmark_interval: Duration,
    /// `timeoutSeconds`: the server ends the stream after this long.
    pub timeout: Option<Duration>,
}

/// Start a watch; the receiver yields the body's lines. A watch from an expired version yields one
/// `ERROR` event carrying the 410 Status and ends, as kube-apiserver's watch cache answers.
pub fn start(
    store: Arc<Store>,
    filter: Filter,
    from: WatchFrom,
    options: WatchOptions,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let subscription = store.subscribe(&filter, from);
    tokio::spawn(async move {
        let (initial, receiver, mut last_seen) = match subscription {
            Ok(s) => s,
            Err(error) => {
                let _ = tx.send(error_line(&error)).await;
                return;
            }
        };
        for record in initial {
            if tx.send(event_line(&record)).await.is_err() {
                return;
            }
        }
        follow(filter, receiver, &mut last_seen, options, tx).await;
    });
    rx
}

async fn follow(
    filter: Filter,
    mut receiver: broadcast::Receiver<Arc<Record>>,
    last_seen: &mut u64,
    options: WatchOptions,
    tx: mpsc::Sender<Bytes>,
) {
    let deadline = options.timeout.map(|t| Instant::now() + t);
    let mut bookmarks = tokio::time::interval(options.bookmark_interval);
    bookmarks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    bookmarks.tick().await;
    loop {
        let line = tokio::select! {
            received = receiver.recv() => match received {
                Ok(record) => {
                    // Every record passes through every watch, so `last_seen` is exactly the version up
                    // to which this watch is complete: what a bookmark may promise.
                    *last_seen = record.rv;
                    if !filter.matches_record(&record) {
                        continue;
                    }
                    event_line(&record)
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow: cut off like a real server does; the client relists.
                    let _ = tx.send(error_line(&crate::store::expired(*last_seen, *last_seen + 1))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = bookmarks.tick(), if options.bookmarks => bookmark_line(filter.resource, *last_seen),
            () = sleep_until_opt(deadline) => return,
            () = tx.closed() => return,
        };
        if tx.send(line).await.is_err() {
            return;
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn line(event: &Value) -> Bytes {
    let mut text = event.to_string();
    text.push('\n');
    Bytes::from(text)
}

fn event_line(record: &Record) -> Bytes {
    line(&json!({"type": record.change.as_str(), "object": record.object}))
}

fn bookmark_line(resource: usize, rv: u64) -> Bytes {
    let res = &RESOURCES[resource];
    line(&json!({"type": "BOOKMARK", "object": {
        "kind": res.kind, "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": rv.to_string()}
    }}))
}

fn error_line(error: &ApiError) -> Bytes {
    line(&json!({"type": "ERROR", "object": error.to_status()}))
}
