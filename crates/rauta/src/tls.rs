//! HTTPS set-up for `rauta run`: the default certificate (from `--default-certificate` or generated) and the
//! certificate store that reloads swap.

use std::path::Path;
use std::sync::Arc;

use rauta_manifests::parse_manifest;
use rauta_tls::rustls::sign::CertifiedKey;

/// Why the default certificate cannot be used; fatal at startup (an explicitly configured certificate that
/// does not load must not be replaced silently by a generated one).
#[derive(Debug, thiserror::Error)]
pub enum DefaultCertificateError {
    /// The file cannot be read.
    #[error("--default-certificate {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no Secret, or more than one.
    #[error(
        "--default-certificate {path}: expected exactly one Secret document, found {found}{errors}"
    )]
    NotOneSecret {
        /// The file.
        path: String,
        /// How many Secrets were found.
        found: usize,
        /// Manifest errors in the file, if any (`; `-joined, with a leading `: `).
        errors: String,
    },
    /// The Secret does not hold a usable certificate and key.
    #[error("--default-certificate {path}: Secret {name}: {source}")]
    Secret {
        /// The file.
        path: String,
        /// `namespace/name` of the Secret.
        name: String,
        /// Why.
        #[source]
        source: rauta_tls::SecretError,
    },
    /// Generating a certificate failed.
    #[error(transparent)]
    Generate(#[from] rauta_tls::GenerateError),
}

/// The certificate for SNI names no Ingress covers: the `kubernetes.io/tls` Secret in `file` (YAML or JSON,
/// one Secret), else a self-signed one generated now, with a warning.
pub fn default_certificate(file: Option<&Path>) -> Result<CertifiedKey, DefaultCertificateError> {
    let Some(file) = file else {
        tracing::warn!(
            "no --default-certificate: HTTPS clients whose SNI matches no Ingress get a generated self-signed certificate"
        );
        return Ok(rauta_tls::generate_default_certificate()?);
    };
    let path = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|source| DefaultCertificateError::Read {
        path: path.clone(),
        source,
    })?;
    let parsed = parse_manifest(&path, &text);
    let secrets = &parsed.inputs.secrets;
    let [secret] = secrets.as_slice() else {
        let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
        return Err(DefaultCertificateError::NotOneSecret {
            path,
            found: secrets.len(),
            errors: if errors.is_empty() {
                String::new()
            } else {
                format!(": {}", errors.join("; "))
            },
        });
    };
    rauta_tls::certified_key_from_secret(secret).map_err(|source| DefaultCertificateError::Secret {
        path,
        name: format!("{}/{}", secret.metadata.namespace(), secret.metadata.name),
        source,
    })
}

/// The server configuration of the HTTPS listener, reading certificates from `certificates` at every
/// handshake.
pub fn server_config(
    certificates: &rauta_tls::TlsCertificates,
) -> Result<Arc<rauta_proxy::rustls::ServerConfig>, rauta_proxy::rustls::Error> {
    rauta_tls::server_config(certificates.store()).map(Arc::new)
}

/// Follow the `--default-certificate` file: after every change (and `debounce` of quiet), read it again
/// and serve the new certificate from the next handshake on, like certificates from Secrets; open
/// connections keep theirs. A file that no longer loads is reported and the current certificate stays (a
/// half-written or broken file must not take the listener's fallback away). Runs until aborted.
pub async fn follow_default_certificate(
    file: std::path::PathBuf,
    certificates: Arc<rauta_tls::TlsCertificates>,
    debounce: std::time::Duration,
) {
    let (tx, mut changes) = tokio::sync::mpsc::channel(1);
    // Held for as long as the loop runs: dropping it ends the watch.
    let _watcher = match crate::watch::watch(std::slice::from_ref(&file), tx) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(file = %file.display(), %error, "cannot watch --default-certificate; changes to it need a restart");
            return;
        }
    };
    let mut current = std::fs::read(&file).ok();
    while changes.recv().await.is_some() {
        // Let a burst of writes settle (an editor's save is several events).
        tokio::time::sleep(debounce).await;
        while changes.try_recv().is_ok() {}
        let read = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || {
                let bytes = std::fs::read(&file).ok();
                (bytes, default_certificate(Some(&file)))
            })
            .await
        };
        let Ok((bytes, loaded)) = read else { continue };
        if bytes.is_some() && bytes == current {
            continue;
        }
        match loaded {
            Ok(key) => {
                certificates.set_default(key);
                current = bytes;
                tracing::info!(file = %file.display(), "default certificate reloaded");
            }
            Err(error) => tracing::warn!(
                %error,
                "the changed --default-certificate cannot be used; still serving the previous default certificate"
            ),
        }
    }
}
