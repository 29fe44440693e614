//! RAUTA's Kubernetes mode: watch the cluster and turn its objects into route-compiler inputs.
//!
//! One kube-rs [`watcher`](kube::runtime::watcher) per kind and namespace scope (cluster-wide, or one per
//! `--watch-namespace`; IngressClasses are cluster-scoped and always watched cluster-wide) feeds a cache
//! with the semantics of kube's reflector: a (re)list is buffered from `Init` to `InitDone` and then
//! replaces that stream's objects in one step, so a relist after `410 Gone` or an API-server restart
//! never serves a mixture, and objects deleted while the watch was down disappear. Watch errors are retried
//! with kube's default backoff; while the API server is unreachable the cache, and so the serving table,
//! stays as it was.
//!
//! Objects are decoded from the API's JSON straight into the compiler's own serde model
//! ([`rauta_routes::model`]), the same types standalone mode reads from files, skipping what the model
//! does not read (see `wire`: no `serde_json::Value` trees per object), and handed on as
//! [`Inputs`] snapshots through a `tokio::sync::watch` channel ([`Watching::snapshots`]): the binary
//! compiles them with the same compiler and swaps the table the same way as for files.
//!
//! Bursts: every change wakes the [`debounce`] loop, which publishes once the stream has been quiet
//! for [`WatchConfig::quiet`] or, under a steady stream of changes, at most [`WatchConfig::max_delay`]
//! after the first one, so one change reaches the compiler well within 100 ms and a burst compiles once.
//!
//! Secrets are bounded to the ones used: see [`secrets`].
#![forbid(unsafe_code)]

mod cache;
mod connect;
mod debounce;
pub mod election;
pub mod events;
mod kinds;
mod reflect;
pub mod secrets;
pub mod status;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use rauta_routes::model::SharedInputs;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use connect::{client, ConnectError};
pub use election::ElectionConfig;
pub use events::EventRecorder;
/// The Kubernetes client (kube-rs), for callers that hold one without depending on kube.
pub use kube::Client;
pub use status::Publish;

/// What to watch and how to batch.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Namespaces to watch; empty means every namespace.
    pub namespaces: Vec<String>,
    /// `--ingress-class`: decides which Ingresses' TLS Secrets are kept.
    pub ingress_class: String,
    /// Publish once no change arrived for this long.
    pub quiet: Duration,
    /// ... but no later than this after the first change of a burst.
    pub max_delay: Duration,
}

impl WatchConfig {
    /// Defaults: every namespace, class `rauta`, 10 ms quiet, 50 ms at most (a full recompile of 10,000
    /// paths takes ~55 ms, and one change must serve within 100 ms).
    pub fn new(ingress_class: impl Into<String>) -> Self {
        Self {
            namespaces: Vec::new(),
            ingress_class: ingress_class.into(),
            quiet: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        }
    }
}

/// A published state of the watched objects.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The objects, as the incremental compiler takes them (shared with the previous snapshot where
    /// unchanged).
    pub inputs: Arc<SharedInputs>,
    /// `status.loadBalancer.ingress` of every Ingress, in the order of `inputs.ingresses`, for the
    /// status writer.
    pub ingress_status: status::IngressStatus,
    /// Counts up with every publication (1 is the first full sync).
    pub generation: u64,
}

/// The running watches. Dropping it stops them.
pub struct Watching {
    /// `None` until every watch has completed its first list; then the latest snapshot.
    pub snapshots: watch::Receiver<Option<Snapshot>>,
    client: kube::Client,
    class: String,
    tasks: JoinSet<()>,
}

impl Watching {
    /// The client the watches use (for calls made at shutdown, such as releasing the Lease).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Also elect a leader among the replicas and, while leading, write the status of our Ingresses.
    /// Returns whether this replica leads (changes over time).
    pub fn publish_status(
        &mut self,
        publish: Publish,
        election: ElectionConfig,
    ) -> watch::Receiver<bool> {
        let (leader_tx, leader) = watch::channel(false);
        self.tasks
            .spawn(election::run(self.client.clone(), election, leader_tx));
        self.tasks.spawn(status::run(
            self.client.clone(),
            publish,
            self.class.clone(),
            self.snapshots.clone(),
            leader.clone(),
        ));
        leader
    }
}

/// Start watching with `client`. Returns at once; the first snapshot follows the initial lists.
pub fn start(client: kube::Client, config: WatchConfig) -> Watching {
    let cache = Arc::new(cache::Cache::new(&config));
    let class = config.ingress_class.clone();
    let (snapshot_tx, snapshots) = watch::channel(None);
    let mut tasks = JoinSet::new();
    reflect::spawn_all(&client, &cache, &mut tasks);
    tasks.spawn(debounce::run(cache, config, snapshot_tx));
    Watching {
        snapshots,
        client,
        class,
        tasks,
    }
}
