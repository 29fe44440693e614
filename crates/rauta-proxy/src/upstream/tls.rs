//! TLS to the backend, for Service ports with `appProtocol: kubernetes.io/wss`: the upstream stream type
//! (plain TCP or rustls over TCP) and the connector.
//!
//! What an ingress user can expect (and what differs from ingress-nginx):
//! - **SNI** is the request's Host (without its port), so a backend serving several names picks the
//!   right certificate. A Host that is an IP address (or absent, or not a valid DNS name) sends no SNI
//!   (RFC 6066 forbids addresses there). ingress-nginx sends none by default (`proxy_ssl_server_name
//!   off`) and, when switched on, `proxy_ssl_name`'s default (`$proxy_host`, its upstream block's name);
//!   the Host is what Envoy's `auto_sni` sends and what the backend's certificate is most likely for.
//! - **No certificate verification**: backends in a cluster mostly have self-signed certificates, so
//!   the chain and name are not checked (ingress-nginx's default `proxy_ssl_verify off`). The handshake
//!   signature still is, so the key exchange is bound to the certificate presented. The encryption
//!   protects against passive eavesdropping on the pod network, not against an active attacker there.
//! - TLS 1.2 and 1.3 (the ring provider's default suites), ALPN `http/1.1` (upgrades need HTTP/1.1).
//! - A TLS connection is opened per request and never pooled: a pooled connection could carry one
//!   request's SNI into another's, and WebSocket connections (what the protocol is for) are never
//!   pooled anyway. A failed handshake (a backend speaking plain TCP, a protocol mismatch) answers 502
//!   and is logged once per failure with the endpoint and the reason.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::header;
use http::request;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::error::ProxyError;

/// The Service port `appProtocol` of a backend that speaks WebSocket over TLS (and HTTP/1.1 over TLS).
pub(crate) const WSS: &str = "kubernetes.io/wss";

/// A connection to an endpoint: plain TCP, or TLS over it. Reads and writes cost one match on top of
/// the TCP stream's own.
pub(crate) enum UpstreamIo {
    /// Plain TCP (every `appProtocol` but `kubernetes.io/wss`).
    Plain(TcpStream),
    /// rustls over TCP. Boxed: the TLS state is ~1 KiB and must not enlarge every pooled plain connection.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamIo {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => {
                // The codec never flushes (a TCP write needs none), but rustls may keep the end of a
                // write it accepted when the socket was full: it goes out whenever the reader waits.
                if let Poll::Ready(Err(err)) = Pin::new(&mut **tls).poll_flush(cx) {
                    return Poll::Ready(Err(err));
                }
                Pin::new(&mut **tls).poll_read(cx, buf)
            }
        }
    }
}

impl AsyncWrite for UpstreamIo {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}

/// The client configuration every upstream TLS connection shares (built once: it holds the session
/// cache, so reconnects to an endpoint resume their sessions).
fn client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let provider = Arc::new(crypto::ring::default_provider());
    let verifier = Arc::new(NoVerification(provider.clone()));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// The SNI for a request to `endpoint`: its Host without the port when that is a DNS name, else the
/// endpoint's address (for which rustls sends no SNI).
pub(crate) fn server_name(parts: &request::Parts, endpoint: SocketAddr) -> ServerName<'static> {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(strip_port)
        .unwrap_or("");
    match ServerName::try_from(host) {
        Ok(ServerName::DnsName(name)) => ServerName::DnsName(name.to_owned()),
        _ => ServerName::IpAddress(endpoint.ip().into()),
    }
}

/// `host:port` → `host`, `[v6]:port` or `[v6]` → `v6`; a bare name or address stays as it is.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip);
    }
    match host.rsplit_once(':') {
        // One colon: a port. More: an unbracketed IPv6 address (not valid in Host, no SNI either way).
        Some((name, _port)) if !name.contains(':') => name,
        _ => host,
    }
}

/// Handshake TLS with `endpoint` over `tcp`, naming `sni`, within `timeout`. A failure is logged (with
/// the endpoint and rustls' reason) and answers 502.
pub(crate) async fn handshake(
    tcp: TcpStream,
    endpoint: SocketAddr,
    sni: ServerName<'static>,
    timeout: Duration,
) -> Result<UpstreamIo, ProxyError> {
    let config = client_config().map_err(|err| {
        tracing::error!(error = %err, "upstream TLS configuration failed");
        ProxyError::Upstream(io::Error::other(err))
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let err = match tokio::time::timeout(timeout, connector.connect(sni, tcp)).await {
        Ok(Ok(tls)) => return Ok(UpstreamIo::Tls(Box::new(tls))),
        Ok(Err(err)) => err,
        Err(_elapsed) => io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"),
    };
    tracing::warn!(%endpoint, error = %err, "TLS handshake with the backend failed (appProtocol kubernetes.io/wss)");
    Err(ProxyError::Upstream(io::Error::new(
        err.kind(),
        format!("TLS handshake with {endpoint}: {err}"),
    )))
}

/// Accepts any certificate chain and name (see the module doc for why), but still checks the handshake
/// signatures with the provider's algorithms.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: Option<&str>) -> request::Parts {
        let mut b = http::Request::builder().uri("/");
        if let Some(host) = host {
            b = b.header("host", host);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn sni_is_the_host_name_and_never_an_address() {
        let endpoint: SocketAddr = "10.0.0.7:8443".parse().unwrap();
        let ip = ServerName::IpAddress(endpoint.ip().into());
        let dns = |s: &str| ServerName::try_from(s.to_owned()).unwrap();
        for (host, want) in [
            (Some("ws.example"), dns("ws.example")),
            (Some("ws.example:8443"), dns("ws.example")),
            (Some("192.0.2.1"), ip.clone()),
            (Some("192.0.2.1:80"), ip.clone()),
            (Some("[2001:db8::1]:443"), ip.clone()),
            (Some("[2001:db8::1]"), ip.clone()),
            (Some("bad name!"), ip.clone()),
            (Some(""), ip.clone()),
            (None, ip.clone()),
        ] {
            assert_eq!(server_name(&parts(host), endpoint), want, "{host:?}");
        }
    }

    #[test]
    fn the_client_config_builds_once() {
        let a = client_config().unwrap();
        let b = client_config().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
