//! TLS certificates for RAUTA's HTTPS listener.
//!
//! Kubernetes objects in, an immutable [`CertStore`] out, like the route compiler: `spec.tls[].hosts` of the
//! Ingresses we own name a `kubernetes.io/tls` Secret (`tls.crt`: PEM chain, leaf first; `tls.key`: PEM key,
//! RSA or ECDSA, PKCS#8, PKCS#1 or SEC1). The store answers "which certificate for this SNI name": an exact
//! host, else a one-label wildcard (`*.example.com`), else the default certificate.
//!
//! A Secret that is missing or broken never breaks anything else: its hosts are served the default
//! certificate, and the problem is reported (once per change, in the log, and as a metric) by
//! [`TlsCertificates`], which also holds the serving store in an `ArcSwap` so that a reload swaps it without
//! touching open connections (a connection's certificate was chosen during its handshake).
//!
//! [`server_config`] builds the rustls configuration the HTTPS listener uses: TLS 1.2 and 1.3 only, ALPN
//! `h2` and `http/1.1`, certificates chosen per handshake through [`SniResolver`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod default_cert;
mod metrics;
mod secret;
mod state;
mod store;
#[cfg(test)]
mod test_certs;

pub use config::{server_config, SniResolver, ALPN_H2, ALPN_HTTP11};
pub use default_cert::{generate_default_certificate, GenerateError};
pub use metrics::TlsMetrics;
/// The rustls version these types come from.
pub use rustls;
pub use secret::{certified_key_from_secret, SecretError};
pub use state::TlsCertificates;
pub use store::{CertProblem, CertStore};
