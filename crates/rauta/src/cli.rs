//! The command line: `rauta run` serves, `rauta check` validates manifests without serving.
//!
//! Every value is validated here, by clap, so that a bad flag ends with clap's usual message and exit code 2
//! before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rauta_routes::{PortRef, ServiceRef};

/// RAUTA: a Kubernetes ingress controller with in-kernel (eBPF) fast paths and a Rust userspace proxy.
#[derive(Debug, Parser)]
#[command(name = "rauta", version, propagate_version = true)]
pub struct Cli {
    // Plain comments on clap fields: doc comments would become help text.
    // The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve traffic. With --manifests: standalone mode, configuration from files (live reloaded).
    /// Without: Kubernetes mode, configuration watched from the API server (in-cluster, KUBECONFIG or
    /// --kubeconfig).
    Run(Box<RunArgs>),
    /// Validate manifests and print the compiled routes without serving. Exit 1 if anything was rejected.
    Check(CheckArgs),
}

/// Flags shared by `run` and `check`: where configuration comes from and how it is compiled.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// A manifest file (one or more YAML/JSON documents) or a directory read recursively for *.yaml, *.yml
    /// and *.json, in sorted order. Repeatable.
    #[arg(long = "manifests", value_name = "PATH")]
    pub manifests: Vec<PathBuf>,

    /// Only Ingresses of this IngressClass (or, if it is the default class, Ingresses without one).
    #[arg(long, value_name = "NAME", default_value = "rauta")]
    pub ingress_class: String,

    /// Controller-wide default backend for requests no rule matches, as NAMESPACE/SERVICE:PORT (port number
    /// or name).
    #[arg(long, value_name = "NS/NAME:PORT", value_parser = parse_service_ref)]
    pub default_backend: Option<ServiceRef>,
}

/// Flags of `rauta check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    // Where configuration comes from.
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Output format of the compiled routes.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    // Log format and filter.
    #[command(flatten)]
    pub logging: LogArgs,
}

/// Logging flags.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info` or `rauta=debug,info` [default: RUST_LOG if set, else info].
    #[arg(long, value_name = "FILTER", value_parser = parse_log_filter)]
    pub log_level: Option<String>,
}

/// Flags of `rauta run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    // Where configuration comes from.
    #[command(flatten)]
    pub config: ConfigArgs,

    // Log format and filter.
    #[command(flatten)]
    pub logging: LogArgs,

    // Kubernetes mode (without --manifests).
    #[command(flatten)]
    pub kube: KubeArgs,

    /// Plain HTTP listener.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:80")]
    pub http_listen: SocketAddr,

    /// HTTPS listener (TLS 1.2/1.3, certificates chosen by SNI from the Ingresses' spec.tls Secrets).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:443")]
    pub https_listen: SocketAddr,

    /// A file holding one kubernetes.io/tls Secret (YAML or JSON): the certificate for SNI names no Ingress
    /// covers [default: a self-signed certificate generated at start].
    #[arg(long, value_name = "SECRET_FILE")]
    pub default_certificate: Option<PathBuf>,

    /// Log every request on stdout, one line each, in the --log-format (text or JSON).
    #[arg(long)]
    pub access_log: bool,

    /// Admin listener: /metrics, /healthz, /readyz, /routes.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,

    /// In-kernel fast paths (XDP/TC): `auto` uses them when possible, `off` never, `required` refuses to
    /// start without them.
    #[arg(long, value_enum, default_value_t = KernelTiers::Auto)]
    pub kernel_tiers: KernelTiers,

    /// Network interface for the kernel tiers. Repeatable.
    #[arg(long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,

    /// How XDP attaches: `auto` (driver mode, generic where the driver has none), `driver` or
    /// `generic`. Generic suits veth test topologies whose peers run no XDP program.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    pub xdp_mode: XdpMode,

    /// Source-NAT ports of Tier 1 splices to backends, FIRST-LAST (keep it outside
    /// net.ipv4.ip_local_port_range). `off` hands every request to Tier 3.
    #[arg(long, value_name = "FIRST-LAST|off", default_value = "61000-65535", value_parser = parse_nat_ports)]
    pub nat_ports: NatPorts,

    /// Serving threads, each with its own runtime and listening socket (SO_REUSEPORT) [default: one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// Time to establish a connection to an upstream endpoint (then 502).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub upstream_connect_timeout: Duration,

    /// Time for an upstream to send its response head (then 504).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub upstream_response_timeout: Duration,

    /// Largest request head accepted (then 431). At least 8192 (the HTTP parser's smallest buffer).
    #[arg(long, value_name = "BYTES", default_value_t = 16384, value_parser = clap::value_parser!(u64).range(8192..=1048576))]
    pub max_header_bytes: u64,

    /// Most request headers accepted (then 431).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10000))]
    pub max_headers: u64,

    /// Largest request body accepted (then 413) [default: unlimited].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_bytes: Option<u64>,

    /// How long an idle upstream connection stays pooled for reuse.
    #[arg(long, value_name = "DURATION", default_value = "90s", value_parser = parse_duration)]
    pub upstream_idle_timeout: Duration,

    /// Quiet time after a manifest change before reloading, so that a burst of writes reloads once.
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = parse_duration)]
    pub reload_debounce: Duration,

    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Print `listening http=ADDR admin=ADDR` on stdout once bound (for tests and scripts that listen on
    /// port 0).
    #[arg(long, hide = true)]
    pub print_listen_addrs: bool,
}

/// Flags of Kubernetes mode (`rauta run` without `--manifests`).
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Kubeconfig file [default: KUBECONFIG, else ~/.kube/config, else the in-cluster service account].
    #[arg(long, value_name = "PATH", conflicts_with = "manifests")]
    pub kubeconfig: Option<PathBuf>,

    /// Watch only this namespace (repeatable) [default: every namespace]. IngressClasses are
    /// cluster-scoped and always watched.
    #[arg(
        long = "watch-namespace",
        value_name = "NS",
        conflicts_with = "manifests"
    )]
    pub watch_namespaces: Vec<String>,

    /// Write this address (an IP, else a host name) into `status.loadBalancer.ingress` of the Ingresses of
    /// our class. Only the elected leader writes.
    #[arg(
        long,
        value_name = "IP|HOSTNAME",
        conflicts_with_all = ["manifests", "publish_service"]
    )]
    pub publish_address: Option<String>,

    /// Like --publish-address, copying the load-balancer status of this Service (NAMESPACE/NAME).
    #[arg(long, value_name = "NS/NAME", value_parser = parse_namespaced_name, conflicts_with = "manifests")]
    pub publish_service: Option<(String, String)>,

    /// Namespace of the leader-election Lease (`rauta-<ingress class>`).
    #[arg(
        long,
        value_name = "NS",
        env = "POD_NAMESPACE",
        default_value = "default"
    )]
    pub election_namespace: String,

    /// How long a leader's Lease lasts without renewal before another replica takes over.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub election_lease_duration: Duration,
}

/// `NAMESPACE/NAME`.
fn parse_namespaced_name(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err("expected NAMESPACE/NAME, e.g. ingress/rauta".to_string()),
    }
}

/// `--kernel-tiers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KernelTiers {
    /// Use the kernel tiers when they can be loaded; serve with Tier 3 otherwise.
    Auto,
    /// Never load them.
    Off,
    /// Refuse to start without them.
    Required,
}

/// `--xdp-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XdpMode {
    /// Driver (native) mode, generic mode where the driver has no XDP.
    Auto,
    /// Driver mode only.
    Driver,
    /// Generic (skb) mode only.
    Generic,
}

/// `--nat-ports`: the source-NAT port range of Tier 1 splices, or none (splicing off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatPorts(pub Option<(u16, u16)>);

fn parse_nat_ports(text: &str) -> Result<NatPorts, String> {
    if text == "off" {
        return Ok(NatPorts(None));
    }
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| "expected FIRST-LAST (e.g. 61000-65535) or off".to_string())?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port number (1-65535)"))
    };
    let (first, last) = (port(first)?, port(last)?);
    if first == 0 || first > last {
        return Err(format!(
            "{first}-{last} is not a range: needs 1 <= FIRST <= LAST"
        ));
    }
    Ok(NatPorts(Some((first, last))))
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `rauta check --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A readable table.
    Text,
    /// The route table as JSON.
    Json,
}

/// A duration such as `5s`, `250ms` or `1m30s`; zero is rejected because every duration here is a limit.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration =
        humantime::parse_duration(text).map_err(|e| format!("{e} (expected e.g. 5s, 250ms)"))?;
    if duration.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(duration)
}

/// Validates a tracing filter directive without keeping it (`EnvFilter` is not `Clone`, clap needs that).
fn parse_log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

/// `NAMESPACE/NAME:PORT`, the port being a number (1-65535) or a port name.
pub fn parse_service_ref(text: &str) -> Result<ServiceRef, String> {
    const FORM: &str = "expected NAMESPACE/NAME:PORT, e.g. default/fallback:80";
    let (namespace, rest) = text
        .split_once('/')
        .ok_or_else(|| format!("missing '/': {FORM}"))?;
    let (name, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("missing ':PORT': {FORM}"))?;
    if namespace.is_empty() || name.is_empty() || port.is_empty() {
        return Err(format!("empty part: {FORM}"));
    }
    if name.contains('/') {
        return Err(format!("too many '/': {FORM}"));
    }
    let port = if port.bytes().all(|b| b.is_ascii_digit()) {
        match port.parse::<u16>() {
            Ok(number) if number > 0 => PortRef::Number(number),
            _ => return Err(format!("port {port} is not in 1-65535")),
        }
    } else {
        PortRef::Name(port.to_string())
    };
    Ok(ServiceRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn service_ref_accepts_numbers_and_names() {
        let by_number = parse_service_ref("web/fallback:8080").unwrap();
        assert_eq!(by_number.namespace, "web");
        assert_eq!(by_number.name, "fallback");
        assert_eq!(by_number.port, PortRef::Number(8080));
        assert_eq!(
            parse_service_ref("default/fb:http").unwrap().port,
            PortRef::Name("http".into())
        );
    }

    #[test]
    fn service_ref_rejects_malformed_values() {
        for bad in [
            "fallback:80",
            "default/fallback",
            "/x:80",
            "ns/:80",
            "ns/x:",
            "ns/x:0",
            "ns/x:70000",
            "a/b/c:80",
        ] {
            assert!(parse_service_ref(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn durations_need_units_and_a_positive_value() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn run_defaults_match_the_documentation() {
        let cli = Cli::try_parse_from(["rauta", "run", "--manifests", "x.yaml"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.http_listen, "0.0.0.0:80".parse().unwrap());
        assert_eq!(run.https_listen, "0.0.0.0:443".parse().unwrap());
        assert_eq!(run.admin_listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(run.kernel_tiers, KernelTiers::Auto);
        assert_eq!(run.config.ingress_class, "rauta");
        assert_eq!(run.upstream_connect_timeout, Duration::from_secs(5));
        assert_eq!(run.upstream_response_timeout, Duration::from_secs(60));
        assert_eq!(run.max_header_bytes, 16384);
        assert_eq!(run.max_headers, 100);
        assert_eq!(run.max_body_bytes, None);
        assert_eq!(run.reload_debounce, Duration::from_millis(200));
        assert_eq!(run.shutdown_timeout, Duration::from_secs(30));
    }
}
