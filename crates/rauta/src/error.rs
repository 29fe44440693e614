//! Errors that end the process, each printed as one line that says what to do.

use std::io;
use std::net::SocketAddr;

use crate::sources::ReadError;

/// Why `rauta` stopped with a non-zero exit code.
#[derive(Debug, thiserror::Error)]
pub enum FatalError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {}", describe_bind_error(.source, .flag, .addr))]
    Listen {
        /// The flag that sets this address, for the hint.
        flag: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// Manifests could not be read at startup, so there is no configuration to serve.
    #[error("{}", join_read_errors(.0))]
    ManifestsUnreadable(Vec<ReadError>),
    /// `--kernel-tiers required` but the kernel tiers cannot run here.
    #[error(
        "--kernel-tiers required: the kernel tiers (XDP/TC) cannot run: {0} \
         (use --kernel-tiers auto to serve with Tier 3 alone)"
    )]
    KernelTiersRequired(#[source] crate::kernel::Off),
    /// The tokio runtime could not be built (thread creation failed).
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] io::Error),
    /// The proxy stopped serving on its own.
    #[error("the HTTP proxy stopped: {0}")]
    Proxy(String),
    /// A bug: a task panicked or was cancelled.
    #[error("internal error (a bug in rauta, please report it): {0}")]
    Internal(String),
    /// Kubernetes mode: no usable API client configuration.
    #[error("{0}")]
    Kubernetes(#[source] rauta_k8s::ConnectError),
    /// The HTTPS default certificate (`--default-certificate`) cannot be used.
    #[error("{0}")]
    DefaultCertificate(#[source] crate::tls::DefaultCertificateError),
    /// The TLS server configuration cannot be built.
    #[error("cannot configure TLS: {0}")]
    Tls(#[source] rauta_proxy::rustls::Error),
    /// The manifest watcher could not be started at all (neither inotify nor polling).
    #[error("cannot watch the manifests for changes: {0}")]
    Watch(#[source] notify::Error),
}

fn describe_bind_error(error: &io::Error, flag: &str, addr: &SocketAddr) -> String {
    match error.kind() {
        io::ErrorKind::PermissionDenied => {
            // Ports below 1024 need root or CAP_NET_BIND_SERVICE; the usual unprivileged twin is +8000.
            let port = if addr.port() < 1024 {
                addr.port() + 8000
            } else {
                addr.port()
            };
            format!("permission denied (try {flag} 127.0.0.1:{port} or run as root)")
        }
        io::ErrorKind::AddrInUse => {
            format!("address already in use (another process listens there; choose another {flag})")
        }
        io::ErrorKind::AddrNotAvailable => "address not available on this host".to_string(),
        _ => error.to_string(),
    }
}

fn join_read_errors(errors: &[ReadError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_on_a_low_port_suggests_a_usable_flag() {
        let error = FatalError::Listen {
            flag: "--http-listen",
            addr: "0.0.0.0:80".parse().unwrap(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            error.to_string(),
            "cannot listen on 0.0.0.0:80: permission denied (try --http-listen 127.0.0.1:8080 or run as root)"
        );
    }
}
