//! One `kubernetes.io/tls` Secret to a certificate chain and signing key.

use base64::Engine;
use rauta_routes::model::Secret;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// The Secret type RAUTA reads certificates from.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// Why a Secret cannot be used. The [`SecretError::reason`] is a fixed, short label (used as a metric label).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No Secret of that name in the Ingress's namespace.
    #[error("secret not found")]
    NotFound,
    /// The Secret's `type` is not `kubernetes.io/tls`.
    #[error("type is {0:?}, expected kubernetes.io/tls")]
    WrongType(String),
    /// `tls.crt` or `tls.key` is absent.
    #[error("{0} is missing")]
    MissingKey(&'static str),
    /// A `data` value is not base64, or a value is not UTF-8 text.
    #[error("{0} is not valid base64-encoded text")]
    BadEncoding(&'static str),
    /// `tls.crt` holds no PEM certificate, or one that does not parse.
    #[error("tls.crt: {0}")]
    BadCertificate(String),
    /// `tls.key` holds no usable PEM private key.
    #[error("tls.key: {0}")]
    BadKey(String),
    /// The key is not the key of the first (leaf) certificate.
    #[error("tls.key does not belong to the first certificate of tls.crt")]
    KeyMismatch,
}

impl SecretError {
    /// A stable label for metrics: `not_found`, `wrong_type`, `missing_key`, `bad_encoding`,
    /// `bad_certificate`, `bad_key` or `key_mismatch`.
    pub fn reason(&self) -> &'static str {
        match self {
            SecretError::NotFound => "not_found",
            SecretError::WrongType(_) => "wrong_type",
            SecretError::MissingKey(_) => "missing_key",
            SecretError::BadEncoding(_) => "bad_encoding",
            SecretError::BadCertificate(_) => "bad_certificate",
            SecretError::BadKey(_) => "bad_key",
            SecretError::KeyMismatch => "key_mismatch",
        }
    }
}

/// Decode a `kubernetes.io/tls` Secret into a chain and key ready to serve, checking that the key belongs to
/// the leaf certificate. A Secret without a `type` is accepted (hand-written manifests often omit it).
pub fn certified_key_from_secret(secret: &Secret) -> Result<CertifiedKey, SecretError> {
    if let Some(kind) = secret.type_.as_deref().filter(|t| !t.is_empty()) {
        if kind != TLS_SECRET_TYPE {
            return Err(SecretError::WrongType(kind.to_owned()));
        }
    }
    let crt = value(secret, "tls.crt")?;
    let key = value(secret, "tls.key")?;
    certified_key_from_pem(&crt, &key)
}

/// A chain and key from PEM text: `crt` holds the leaf first, then intermediates.
pub(crate) fn certified_key_from_pem(crt: &[u8], key: &[u8]) -> Result<CertifiedKey, SecretError> {
    let chain = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SecretError::BadCertificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(SecretError::BadCertificate(
            "no PEM CERTIFICATE block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| SecretError::BadKey(e.to_string()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| SecretError::BadKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(SecretError::KeyMismatch)
        }
        // The provider could not tell (no public key for this key type): serve it, as rustls does.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(SecretError::BadCertificate(e.to_string())),
    }
}

/// The bytes of `key`: `stringData` wins over `data` (the API server merges it that way).
fn value(secret: &Secret, key: &'static str) -> Result<Vec<u8>, SecretError> {
    if let Some(text) = secret.string_data.get(key) {
        return Ok(text.as_bytes().to_vec());
    }
    let encoded = secret.data.get(key).ok_or(SecretError::MissingKey(key))?;
    // The API serves one line; manifests may wrap it (Go's decoder skips line breaks too).
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| SecretError::BadEncoding(key))
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;
    use crate::test_certs::{leaf, secret};

    #[test]
    fn ecdsa_and_rsa_chains_load_with_every_certificate() {
        for rsa in [false, true] {
            let l = leaf(&["a.example"], rsa);
            let key = certified_key_from_secret(&secret("s", &l.chain, &l.key)).unwrap();
            assert_eq!(key.cert.len(), 2, "leaf and intermediate (rsa={rsa})");
        }
    }

    #[test]
    fn base64_data_and_pkcs1_keys_load() {
        let l = leaf(&["a.example"], true);
        // PKCS#1 ("BEGIN RSA PRIVATE KEY"), as older tooling writes it.
        let mut child = std::process::Command::new("openssl")
            .args(["pkey", "-traditional"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(l.key.as_bytes())
            .unwrap();
        let pkcs1 = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
        assert!(pkcs1.contains("BEGIN RSA PRIVATE KEY"), "{pkcs1}");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut s = secret("s", "", "");
        s.string_data.clear();
        s.data.insert("tls.crt".into(), b64(&l.chain));
        s.data.insert("tls.key".into(), b64(&pkcs1));
        assert!(certified_key_from_secret(&s).is_ok());
    }

    #[test]
    fn broken_secrets_say_why() {
        let a = leaf(&["a.example"], false);
        let b = leaf(&["b.example"], false);
        let reason = |s: &Secret| certified_key_from_secret(s).unwrap_err().reason();
        assert_eq!(reason(&secret("s", &a.chain, &b.key)), "key_mismatch");
        assert_eq!(reason(&secret("s", "not pem", &a.key)), "bad_certificate");
        assert_eq!(reason(&secret("s", &a.chain, "not pem")), "bad_key");
        let mut wrong = secret("s", &a.chain, &a.key);
        wrong.type_ = Some("Opaque".into());
        assert_eq!(reason(&wrong), "wrong_type");
        let mut missing = secret("s", &a.chain, &a.key);
        missing.string_data.remove("tls.key");
        assert_eq!(reason(&missing), "missing_key");
        let mut bad = secret("s", &a.chain, &a.key);
        bad.string_data.remove("tls.crt");
        bad.data.insert("tls.crt".into(), "!!!".into());
        assert_eq!(reason(&bad), "bad_encoding");
    }
}
