//! Kubernetes mode's configuration source: `rauta-k8s` watches the API server and publishes snapshots of
//! the objects; each is compiled by the same compiler as manifest files and swapped in through the same
//! [`install`] as a file reload.
//!
//! Unlike files, a snapshot is always complete and consistent (the watch cache publishes only after every
//! list is done), so every snapshot is applied; objects the API server accepted but the compiler rejects
//! are diagnostics, logged once each (not at every recompile) and reported as Kubernetes Events on their
//! Ingress (deduplicated; only by the leader when leader election runs).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rauta_k8s::{ElectionConfig, EventRecorder, Publish};
use rauta_routes::model::{Inputs, SharedInputs};
use rauta_routes::{CompileOptions, Compiled, Diagnostic, IncrementalCompiler, RouteTable};

use crate::cli::RunArgs;
use crate::config_metrics::ConfigMetrics;
use crate::error::FatalError;
use crate::kernel::KernelState;
use crate::reload::install;

/// How often startup says it is still waiting for the API server.
const WAITING_NOTICE: Duration = Duration::from_secs(10);

/// The running watch and what the last compile reported.
pub struct KubeSource {
    watching: rauta_k8s::Watching,
    /// Whether this replica leads (status writing runs in `watching`'s tasks); `None` without election.
    leader: Option<tokio::sync::watch::Receiver<bool>>,
    /// Events for configuration problems.
    events: Option<EventRecorder>,
    /// The objects of the last compile (for the Events' object uids).
    last_inputs: Arc<SharedInputs>,
    /// Diagnostics of the first compile, reported as Events once serving has started.
    first_diagnostics: Vec<Diagnostic>,
    /// Compiles each snapshot reusing what it lowered for the unchanged Ingresses (`None` only while a
    /// compile runs on the blocking pool, which owns it meanwhile).
    compiler: Option<IncrementalCompiler>,
    /// The objects the certificates were last built from (see [`TlsObjects`]).
    tls_objects: Option<TlsObjects>,
    /// Leader election, for releasing the Lease at shutdown.
    election: Option<(rauta_k8s::Client, ElectionConfig)>,
    /// Diagnostics already logged, so that a recompile does not repeat them.
    reported: HashSet<String>,
    /// The HTTPS certificates, rebuilt from every snapshot right after its table is installed.
    tls: Option<Arc<rauta_tls::TlsCertificates>>,
}

/// Connect, start watching, and wait for the first complete snapshot; returns the source and its
/// first compiled table.
pub async fn start(
    args: &RunArgs,
    options: &CompileOptions,
) -> Result<(KubeSource, Compiled), FatalError> {
    let client = rauta_k8s::client(args.kube.kubeconfig.as_deref())
        .await
        .map_err(FatalError::Kubernetes)?;
    let mut config = rauta_k8s::WatchConfig::new(options.ingress_class.clone());
    config.namespaces.clone_from(&args.kube.watch_namespaces);
    tracing::info!(
        namespaces = ?config.namespaces,
        class = %config.ingress_class,
        "Kubernetes mode: waiting for the first list of Ingresses, IngressClasses, Services, EndpointSlices and TLS Secrets"
    );
    let events = EventRecorder::new(client.clone(), identity());
    let mut watching = rauta_k8s::start(client, config);
    let publish = match (&args.kube.publish_address, &args.kube.publish_service) {
        (Some(address), _) => Some(Publish::Address(address.clone())),
        (None, Some((namespace, name))) => Some(Publish::Service {
            namespace: namespace.clone(),
            name: name.clone(),
        }),
        (None, None) => None,
    };
    // Without an address to publish there is nothing only a leader may do, so no election either.
    let mut election = None;
    let leader = publish.map(|publish| {
        let config = ElectionConfig {
            namespace: args.kube.election_namespace.clone(),
            name: format!("rauta-{}", options.ingress_class),
            identity: identity(),
            lease_duration: args.kube.election_lease_duration,
        };
        tracing::info!(identity = %config.identity, namespace = %config.namespace, lease = %config.name, "Ingress status: taking part in leader election");
        election = Some((watching.client(), config.clone()));
        watching.publish_status(publish, config)
    });
    let mut source = KubeSource {
        watching,
        leader,
        events: Some(events),
        last_inputs: Arc::default(),
        first_diagnostics: Vec::new(),
        compiler: Some(IncrementalCompiler::new(options.clone())),
        tls_objects: None,
        election,
        reported: HashSet::new(),
        tls: None,
    };
    loop {
        let latest = source.watching.snapshots.borrow_and_update().clone();
        if let Some(snapshot) = latest {
            let compiled = source.compile(snapshot).await?;
            source.first_diagnostics.clone_from(&compiled.diagnostics);
            return Ok((source, compiled));
        }
        match tokio::time::timeout(WAITING_NOTICE, source.watching.snapshots.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(FatalError::Internal(
                    "the Kubernetes watch stopped".to_string(),
                ))
            }
            Err(_) => tracing::warn!(
                "still waiting for the Kubernetes API server (see the watch errors above)"
            ),
        }
    }
}

/// This replica's name in the Lease: the pod name (`POD_NAME`, from the downward API) or the host name,
/// with the process id so that two processes on one host differ.
fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME") {
        if !pod.is_empty() {
            return pod;
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "rauta".to_string());
    format!("{host}-{}", std::process::id())
}

impl KubeSource {
    async fn compile(&mut self, snapshot: rauta_k8s::Snapshot) -> Result<Compiled, FatalError> {
        let started = std::time::Instant::now();
        let mut compiler = self
            .compiler
            .take()
            .ok_or_else(|| FatalError::Internal("a compile is already running".to_string()))?;
        let inputs = snapshot.inputs.clone();
        let (compiler, compiled, reuse) = tokio::task::spawn_blocking(move || {
            let (mut compiled, reuse) = compiler.compile(&inputs);
            // Secret problems the route compiler does not see (it does not read Secrets).
            compiled.diagnostics.extend(rauta_k8s::secrets::diagnostics(
                &compiler.options().ingress_class,
                &inputs,
            ));
            (compiler, compiled, reuse)
        })
        .await
        .map_err(|e| FatalError::Internal(format!("compiling failed unexpectedly: {e}")))?;
        self.compiler = Some(compiler);
        self.last_inputs = snapshot.inputs.clone();
        let current: HashSet<String> = compiled
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect();
        for diagnostic in current.difference(&self.reported) {
            tracing::warn!("{diagnostic}");
        }
        self.reported = current;
        tracing::debug!(
            generation = snapshot.generation,
            ingresses = snapshot.inputs.ingresses.len(),
            lowered = reuse.lowered,
            reused = reuse.reused,
            took = ?started.elapsed(),
            "compiled a Kubernetes snapshot"
        );
        Ok(compiled)
    }

    /// Serve the TLS Secrets of the snapshots through `tls`, starting with the first snapshot's.
    pub fn with_tls(mut self, tls: Arc<rauta_tls::TlsCertificates>) -> Self {
        self.tls = Some(tls);
        self.update_tls();
        self
    }

    /// Rebuild the certificates if the objects they come from changed since the last build.
    fn update_tls(&mut self) {
        let Some(tls) = &self.tls else { return };
        let objects = TlsObjects::of(&self.last_inputs);
        if self.tls_objects.as_ref() == Some(&objects) {
            return;
        }
        tls.update(&objects.to_inputs());
        self.tls_objects = Some(objects);
    }

    /// What shutdown needs to give up this replica's leadership at once; `None` without election.
    pub fn releaser(&self) -> Option<LeaseReleaser> {
        self.election
            .clone()
            .map(|(client, config)| LeaseReleaser { client, config })
    }

    /// Compile and install every new snapshot until the watch ends.
    pub async fn run(
        mut self,
        table: Arc<ArcSwap<RouteTable>>,
        kernel: Option<Arc<KernelState>>,
        health: Option<rauta_health::Health>,
        metrics: ConfigMetrics,
    ) {
        // Events are created by their own task, so that creating many (a burst of problems) never delays
        // a table swap; it always works on the latest compile's problems.
        let (problems_tx, problems) = tokio::sync::watch::channel((
            Arc::new(std::mem::take(&mut self.first_diagnostics)),
            self.last_inputs.clone(),
        ));
        let _reporter = AbortOnDrop(tokio::spawn(report(
            self.events.take(),
            self.leader.clone(),
            problems,
        )));
        while self.watching.snapshots.changed().await.is_ok() {
            let latest = self.watching.snapshots.borrow_and_update().clone();
            let Some(snapshot) = latest else {
                continue;
            };
            match self.compile(snapshot).await {
                Ok(compiled) => {
                    let routes = install(
                        &table,
                        kernel.as_deref(),
                        health.as_ref(),
                        &metrics,
                        compiled.table,
                    );
                    self.update_tls();
                    tracing::info!(
                        routes,
                        diagnostics = compiled.diagnostics.len(),
                        "configuration updated from the Kubernetes API"
                    );
                    problems_tx
                        .send_replace((Arc::new(compiled.diagnostics), self.last_inputs.clone()));
                }
                Err(error) => tracing::error!(%error, "keeping the current configuration"),
            }
        }
    }
}

/// The latest compile's problems and the objects they are about.
type Problems = (Arc<Vec<Diagnostic>>, Arc<SharedInputs>);

/// Gives the Lease up at shutdown (see [`rauta_k8s::election::release`]).
pub struct LeaseReleaser {
    client: rauta_k8s::Client,
    config: ElectionConfig,
}

impl LeaseReleaser {
    /// Release the Lease if this replica holds it. Call after the configuration task has stopped (so
    /// the election no longer renews). Bounded: shutdown never waits long for an unreachable API server.
    pub async fn release(self) {
        let released = tokio::time::timeout(
            RELEASE_TIMEOUT,
            rauta_k8s::election::release(self.client, &self.config),
        )
        .await;
        match released {
            Ok(Ok(true)) => tracing::info!(lease = %self.config.name, "released the leadership"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => {
                tracing::warn!(lease = %self.config.name, %error, "cannot release the Lease; another replica takes over when it expires")
            }
            Err(_) => {
                tracing::warn!(lease = %self.config.name, "releasing the Lease timed out; another replica takes over when it expires")
            }
        }
    }
}

/// How long shutdown waits for the Lease release.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The objects the TLS certificates are built from: the Ingresses with a `spec.tls`, the IngressClasses
/// (which Ingresses are ours) and the Secrets, as shared pointers. Comparing two of them tells whether
/// the certificates need a rebuild, without looking inside any object (an unchanged object keeps its
/// `Arc` from snapshot to snapshot).
struct TlsObjects {
    ingresses: Vec<Arc<rauta_routes::model::Ingress>>,
    classes: Vec<Arc<rauta_routes::model::IngressClass>>,
    secrets: Vec<Arc<rauta_routes::model::Secret>>,
}

impl TlsObjects {
    fn of(inputs: &SharedInputs) -> Self {
        Self {
            ingresses: inputs
                .ingresses
                .iter()
                .filter(|i| !i.spec.tls.is_empty())
                .cloned()
                .collect(),
            classes: inputs.ingress_classes.clone(),
            secrets: inputs.secrets.clone(),
        }
    }

    /// The certificate store reads only these objects (Ingresses without `spec.tls` add nothing to it).
    fn to_inputs(&self) -> Inputs {
        Inputs {
            ingresses: self.ingresses.iter().map(|i| (**i).clone()).collect(),
            ingress_classes: self.classes.iter().map(|c| (**c).clone()).collect(),
            secrets: self.secrets.iter().map(|s| (**s).clone()).collect(),
            ..Inputs::default()
        }
    }
}

impl PartialEq for TlsObjects {
    fn eq(&self, other: &Self) -> bool {
        fn same<T>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
        }
        same(&self.ingresses, &other.ingresses)
            && same(&self.classes, &other.classes)
            && same(&self.secrets, &other.secrets)
    }
}

/// Create Events for problems not reported yet, whenever the problems change or this replica becomes the
/// leader; with leader election, only the leader reports.
async fn report(
    recorder: Option<EventRecorder>,
    mut leader: Option<tokio::sync::watch::Receiver<bool>>,
    mut problems: tokio::sync::watch::Receiver<Problems>,
) {
    let Some(mut recorder) = recorder else { return };
    loop {
        let leading = leader.as_mut().is_none_or(|l| *l.borrow_and_update());
        if leading {
            let (diagnostics, inputs) = problems.borrow_and_update().clone();
            let created = recorder.record(&diagnostics, &inputs.ingresses).await;
            if created > 0 {
                tracing::debug!(created, "recorded Events for configuration problems");
            }
        }
        tokio::select! {
            changed = problems.changed() => if changed.is_err() { return },
            changed = async {
                match leader.as_mut() {
                    Some(l) => l.changed().await,
                    None => std::future::pending().await,
                }
            } => if changed.is_err() { return },
        }
    }
}

/// Ends the Event task with `run` (which is aborted at shutdown), even in the middle of a batch.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
