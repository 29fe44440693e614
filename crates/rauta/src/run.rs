//! `rauta run`: load the configuration (manifest files or the Kubernetes API), bind, serve, follow changes, shut
//! down gracefully.
//!
//! Startup order matters for readiness: the first table is loaded before any listener is bound, and
//! `/readyz` turns 200 only once both are done, so a load balancer never sees a ready proxy with an empty
//! table.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use rauta_proxy::{AccessLogFormat, Proxy, ProxyConfig, ProxyMetrics, TlsAcceptor};
use rauta_routes::CompileOptions;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::admin::{self, AdminState};
use crate::cli::{LogFormat, RunArgs};
use crate::config_metrics::ConfigMetrics;
use crate::error::FatalError;
use crate::kernel;
use crate::kube_source;
use crate::load::load;
use crate::reload::Reloader;
use crate::workers;

/// Serve until SIGTERM/SIGINT. Returns once in-flight requests have finished (or the shutdown timeout
/// passed).
pub async fn run(args: RunArgs) -> Result<(), FatalError> {
    let mut termination = Termination::install();
    // First, so that `--kernel-tiers required` fails before anything else starts. Owned by this function
    // (and shared with the admin server and the reloader) until it returns: dropping the last reference
    // detaches the programs.
    let kernel = kernel::start(
        args.kernel_tiers,
        &args.interfaces,
        args.http_listen,
        args.xdp_mode,
        args.nat_ports.0,
    )
    .map_err(FatalError::KernelTiersRequired)?
    .map(Arc::new);

    let options = CompileOptions {
        ingress_class: args.config.ingress_class.clone(),
        default_backend: args.config.default_backend.clone(),
    };
    // The HTTPS certificates: built from the same objects as every table, updated right after it. The
    // metrics are registered with the registry below (clones share the series).
    let tls_metrics = rauta_tls::TlsMetrics::default();
    let certificates = Arc::new(rauta_tls::TlsCertificates::new(
        crate::tls::default_certificate(args.default_certificate.as_deref())
            .map_err(FatalError::DefaultCertificate)?,
        options.ingress_class.clone(),
        tls_metrics.clone(),
    ));
    let tls_config = crate::tls::server_config(&certificates).map_err(FatalError::Tls)?;
    // The configuration source: manifest files (standalone) or the Kubernetes API. Both end in the same
    // compiler and the same table swap (`reload::install`).
    let (first_table, clean, updates) = if args.config.manifests.is_empty() {
        let (source, compiled) = tokio::select! {
            started = kube_source::start(&args, &options) => started?,
            signal = termination.next() => {
                tracing::info!(signal, "stopped before the first configuration arrived");
                return Ok(());
            }
        };
        let routes = compiled.table.routes().len();
        tracing::info!(
            routes,
            diagnostics = compiled.diagnostics.len(),
            "configuration loaded from the Kubernetes API"
        );
        (
            compiled.table,
            true,
            Updates::Kubernetes(Box::new(source.with_tls(certificates.clone()))),
        )
    } else {
        start_files(&args, &options, &certificates).await?
    };
    let route_count = first_table.routes().len();
    let table = Arc::new(ArcSwap::from_pointee(first_table));
    if let Some(kernel) = &kernel {
        kernel.apply_routes(&table.load_full());
    }

    let mut registry = Registry::default();
    let config_metrics = ConfigMetrics::register(&mut registry);
    config_metrics.set_routes(route_count);
    if clean {
        config_metrics.record_clean_load();
    }
    let proxy_metrics = ProxyMetrics::register(&mut registry);
    if let Some(kernel) = &kernel {
        kernel.count_requests_in(
            rauta_dataplane::StatusClasses::LABELS
                .map(|class| proxy_metrics.kernel_tier_requests("1", class)),
        );
    }
    // Endpoint health, shared by every worker; its control task follows the serving table (any source).
    let health = rauta_health::Health::new(&mut registry);
    // The first table is applied here rather than left to the task's first turn, which may come after the
    // listeners are up: the first requests then already pick from it and get its connect-failure retry.
    health.update(table.load_full());
    if let Some(kernel) = &kernel {
        kernel.follow_health(&health);
    }
    let health_task = tokio::spawn(health.clone().follow(table.clone()));
    tls_metrics.register(&mut registry);
    kernel::register_metrics(&mut registry, kernel.clone());

    let workers = args.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let http_listeners =
        rauta_proxy::bind_listener_group(args.http_listen, workers).map_err(|source| {
            FatalError::Listen {
                flag: "--http-listen",
                addr: args.http_listen,
                source,
            }
        })?;
    let https_listeners =
        rauta_proxy::bind_listener_group(args.https_listen, workers).map_err(|source| {
            FatalError::Listen {
                flag: "--https-listen",
                addr: args.https_listen,
                source,
            }
        })?;
    let admin_listener = TcpListener::bind(args.admin_listen)
        .await
        .map_err(|source| FatalError::Listen {
            flag: "--admin-listen",
            addr: args.admin_listen,
            source,
        })?;
    let http_addr = http_listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(args.http_listen);
    let https_addr = https_listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(args.https_listen);
    let admin_addr = admin_listener.local_addr().unwrap_or(args.admin_listen);

    let ready = Arc::new(AtomicBool::new(false));
    let admin_state = Arc::new(AdminState {
        registry,
        table: table.clone(),
        kernel: kernel.clone(),
        ready: ready.clone(),
    });
    let admin_task = tokio::spawn(admin::serve(admin_listener, admin_state));

    // `--default-certificate` is followed like the Secrets are, in both modes.
    let default_cert_task = args.default_certificate.clone().map(|file| {
        tokio::spawn(crate::tls::follow_default_certificate(
            file,
            certificates.clone(),
            args.reload_debounce,
        ))
    });
    // Kubernetes mode with leader election: the Lease is given up at shutdown (below).
    let lease = match &updates {
        Updates::Kubernetes(source) => source.releaser(),
        Updates::Files { .. } => None,
    };
    let mut reload_task = match updates {
        Updates::Files {
            paths,
            watcher,
            change_tx,
            change_rx,
        } => {
            let reloader = Reloader {
                paths,
                options,
                table: table.clone(),
                kernel: kernel.clone(),
                tls: Some(certificates.clone()),
                health: Some(health.clone()),
                metrics: config_metrics,
                debounce: args.reload_debounce,
                watcher,
                changes: change_tx,
            };
            tokio::spawn(reloader.run(change_rx))
        }
        Updates::Kubernetes(source) => tokio::spawn(source.run(
            table.clone(),
            kernel.clone(),
            Some(health.clone()),
            config_metrics,
        )),
    };

    let config = ProxyConfig {
        connect_timeout: args.upstream_connect_timeout,
        response_timeout: args.upstream_response_timeout,
        max_header_bytes: usize::try_from(args.max_header_bytes).unwrap_or(usize::MAX),
        max_headers: usize::try_from(args.max_headers).unwrap_or(usize::MAX),
        max_body_bytes: args.max_body_bytes,
        idle_timeout: args.upstream_idle_timeout,
        health: Some(health),
        https_redirect_port: Some(https_addr.port()),
        access_log: match (args.access_log, args.logging.log_format) {
            (false, _) => AccessLogFormat::Off,
            (true, LogFormat::Text) => AccessLogFormat::Text,
            (true, LogFormat::Json) => AccessLogFormat::Json,
        },
        ..ProxyConfig::default()
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let https = workers::Https {
        listeners: https_listeners,
        acceptor: TlsAcceptor::new(tls_config),
    };
    let mut workers = workers::start(
        http_listeners,
        Some(https),
        || Proxy::new(config.clone(), table.clone(), proxy_metrics.clone()),
        &shutdown_rx,
    )?;

    ready.store(true, Ordering::Release);
    tracing::info!(http = %http_addr, https = %https_addr, admin = %admin_addr, workers = workers.count(), "serving");
    if args.print_listen_addrs {
        // One line on stdout for scripts and tests listening on port 0; logs go to stderr. A closed stdout
        // must not stop the proxy (println! would panic), so write errors are only logged.
        let mut stdout = std::io::stdout().lock();
        if let Err(error) = writeln!(
            stdout,
            "listening http={http_addr} https={https_addr} admin={admin_addr}"
        )
        .and_then(|()| stdout.flush())
        {
            tracing::warn!(%error, "cannot print the listen addresses");
        }
    }

    tokio::select! {
        signal = termination.next() => {
            tracing::info!(signal, timeout = ?args.shutdown_timeout, "shutting down: no new connections, waiting for in-flight requests");
        }
        finished = workers.next_finished() => {
            let why = finished.result.err().unwrap_or_else(|| "it exited without being asked to".to_string());
            return Err(FatalError::Proxy(format!("worker {}: {why}", finished.index)));
        }
    }
    ready.store(false, Ordering::Release);
    let _ = shutdown_tx.send(true);
    reload_task.abort();
    health_task.abort();
    if let Some(lease) = lease {
        // Once the configuration task (which runs the election) is gone, so that nothing renews after.
        let _ = (&mut reload_task).await;
        lease.release().await;
        // Already awaited: what the wait below polls instead (a finished JoinHandle must not be polled).
        reload_task = tokio::spawn(std::future::ready(()));
    }
    if let Some(task) = &default_cert_task {
        task.abort();
    }

    tokio::select! {
        finished = tokio::time::timeout(args.shutdown_timeout, workers.all_finished()) => match finished {
            Ok(_) => tracing::info!("all requests finished; bye"),
            Err(_) => tracing::warn!(timeout = ?args.shutdown_timeout, "shutdown timeout passed; closing the remaining connections"),
        },
        signal = termination.next() => tracing::warn!(signal, "second signal: exiting without waiting"),
    }
    admin_task.abort();
    // Wait for both tasks to be gone so that their references to the kernel tiers are dropped; dropping
    // the last one detaches the programs. That is usually `kernel` here; an admin connection still open
    // holds one until `main` shuts the runtime down, which drops it before the process exits.
    let _ = admin_task.await;
    let _ = reload_task.await;
    drop(kernel);
    Ok(())
}

/// Where later configuration changes come from.
enum Updates {
    /// `--manifests`: the file watch and its notifications, for the [`Reloader`].
    Files {
        paths: Vec<std::path::PathBuf>,
        watcher: crate::watch::ManifestWatcher,
        change_tx: mpsc::Sender<()>,
        change_rx: mpsc::Receiver<()>,
    },
    /// The Kubernetes API.
    Kubernetes(Box<kube_source::KubeSource>),
}

/// Standalone mode's first load: watch the `--manifests` paths, then read and compile them. Returns the
/// table, whether the load was clean, and the watch.
async fn start_files(
    args: &RunArgs,
    options: &CompileOptions,
    certificates: &rauta_tls::TlsCertificates,
) -> Result<(rauta_routes::RouteTable, bool, Updates), FatalError> {
    let paths = args.config.manifests.clone();
    // Watch before the first load, so that an edit made while loading triggers a reload instead of being
    // missed. A watch error is reported after the load's own errors, which explain it better (a missing path).
    let (change_tx, change_rx) = mpsc::channel(1);
    let watcher = crate::watch::watch(&paths, change_tx.clone());
    let loaded = {
        let (paths, options) = (paths.clone(), options.clone());
        tokio::task::spawn_blocking(move || load(&paths, &options))
            .await
            .map_err(|e| {
                FatalError::Internal(format!("loading manifests failed unexpectedly: {e}"))
            })?
    };
    // Without an old configuration to fall back on, an unreadable path is fatal: serving a partial
    // configuration silently would be worse than not starting. Parse errors are not: the valid objects serve.
    if !loaded.read_errors.is_empty() {
        return Err(FatalError::ManifestsUnreadable(loaded.read_errors));
    }
    let watcher = watcher.map_err(FatalError::Watch)?;
    certificates.update(&loaded.inputs);
    loaded.log_problems(false);
    let clean = loaded.is_clean();
    let route_count = loaded.compiled.table.routes().len();
    tracing::info!(
        files = loaded.files,
        routes = route_count,
        errors = loaded.manifest_errors.len(),
        diagnostics = loaded.compiled.diagnostics.len(),
        "configuration loaded"
    );
    Ok((
        loaded.compiled.table,
        clean,
        Updates::Files {
            paths,
            watcher,
            change_tx,
            change_rx,
        },
    ))
}

/// SIGTERM and SIGINT handlers, installed at startup so that a signal during startup is not lost to the
/// default action once serving has begun.
struct Termination {
    signals: Option<(Signal, Signal)>,
}

impl Termination {
    fn install() -> Self {
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Self {
                signals: Some((term, int)),
            },
            _ => {
                tracing::warn!(
                    "cannot install signal handlers; SIGTERM will not drain connections"
                );
                Self { signals: None }
            }
        }
    }

    /// Resolves on the next SIGTERM or SIGINT, with the signal's name; never without handlers (the
    /// signal's default action then ends the process).
    async fn next(&mut self) -> &'static str {
        let Some((term, int)) = &mut self.signals else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
}
