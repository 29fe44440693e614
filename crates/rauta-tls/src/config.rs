//! The rustls server configuration of the HTTPS listener and the SNI resolver it asks per handshake.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::store::CertStore;

/// ALPN protocol id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Chooses the certificate of each handshake from the current [`CertStore`]. Reading the store is one
/// atomic load: a reload that swaps it affects handshakes that start afterwards, never established
/// connections.
#[derive(Debug)]
pub struct SniResolver {
    store: Arc<ArcSwap<CertStore>>,
}

impl SniResolver {
    /// A resolver reading `store` at every handshake.
    pub fn new(store: Arc<ArcSwap<CertStore>>) -> Self {
        Self { store }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.store.load().resolve(client_hello.server_name()))
    }
}

/// The server configuration: TLS 1.2 and 1.3 only (rustls implements nothing older), the ring provider's
/// default cipher suites (ECDHE with AES-GCM or ChaCha20-Poly1305 only) in the server's order, ALPN `h2` then
/// `http/1.1` (a client offering neither still connects and speaks HTTP/1.1), certificates from `store` by
/// SNI.
pub fn server_config(store: Arc<ArcSwap<CertStore>>) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(store)));
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    // The server's suite order (AEAD, strongest first) rather than whatever a client prefers.
    config.ignore_client_order = true;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_alpn_and_cipher_order() {
        let default = Arc::new(crate::generate_default_certificate().unwrap());
        let store = Arc::new(ArcSwap::from_pointee(CertStore::only_default(default)));
        let config = server_config(store).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(config.ignore_client_order);
        let versions: Vec<_> = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.version().version)
            .collect();
        assert!(versions.iter().all(|v| matches!(
            v,
            rustls::ProtocolVersion::TLSv1_2 | rustls::ProtocolVersion::TLSv1_3
        )));
    }
}
