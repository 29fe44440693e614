//! The certificate served when no Secret matches: generated at start when `--default-certificate` is not
//! given (like ingress-nginx's "Kubernetes Ingress Controller Fake Certificate").

use rustls::sign::CertifiedKey;

use crate::secret::{certified_key_from_pem, SecretError};

/// The generated certificate's common name.
const DEFAULT_CN: &str = "RAUTA default certificate";

/// Generating the default certificate failed (should not happen: it needs no input).
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// rcgen could not create the key or certificate.
    #[error("generating the default certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused what rcgen made.
    #[error("loading the generated default certificate: {0}")]
    Load(#[from] SecretError),
}

/// A fresh self-signed ECDSA P-256 certificate for `RAUTA default certificate`, valid for the name
/// `rauta.invalid` only, so that no client trusts it for a real host.
pub fn generate_default_certificate() -> Result<CertifiedKey, GenerateError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec!["rauta.invalid".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, DEFAULT_CN);
    let cert = params.self_signed(&key)?;
    Ok(certified_key_from_pem(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
    )?)
}
