//! One configuration load: read the manifest files, parse them, compile the route table.
//!
//! The same function serves startup, every reload and `rauta check`; only what the caller does with the
//! problems differs (see [`Loaded::is_clean`]).

use std::path::PathBuf;

use rauta_manifests::{parse_manifest, ManifestError, ParsedManifests};
use rauta_routes::model::Inputs;
use rauta_routes::{compile, CompileOptions, Compiled};

use crate::sources::{read_all, ReadError};

/// The result of one load.
#[derive(Debug)]
pub struct Loaded {
    /// The table compiled from every object that parsed, with the compiler's diagnostics.
    pub compiled: Compiled,
    /// Files or directories that could not be read.
    pub read_errors: Vec<ReadError>,
    /// Documents or fields that could not be parsed (each names file, document and field).
    pub manifest_errors: Vec<ManifestError>,
    /// How many files were read.
    pub files: usize,
    /// The objects the table was compiled from (the TLS certificates are built from the same ones).
    pub inputs: Inputs,
}

impl Loaded {
    /// Every file was read and every document parsed. A reload applies only a clean load: otherwise a
    /// half-saved file would silently drop its routes from a running proxy.
    pub fn is_clean(&self) -> bool {
        self.read_errors.is_empty() && self.manifest_errors.is_empty()
    }

    /// Log every problem. Read errors are always logged at error. Manifest errors are logged at error when
    /// they reject the load (`rejected`: a reload keeps the old table because of them), else at warn (the
    /// rest of the configuration serves). Compiler diagnostics are always warnings.
    pub fn log_problems(&self, rejected: bool) {
        for error in &self.read_errors {
            tracing::error!("{error}");
        }
        for error in &self.manifest_errors {
            if rejected {
                tracing::error!("{error}");
            } else {
                tracing::warn!("{error}");
            }
        }
        for diagnostic in &self.compiled.diagnostics {
            tracing::warn!("{diagnostic}");
        }
    }
}

/// Read, parse and compile everything under `paths`. Blocking (file IO, CPU): run it off the async workers.
pub fn load(paths: &[PathBuf], options: &CompileOptions) -> Loaded {
    let sources = read_all(paths);
    let mut parsed = ParsedManifests::default();
    for file in &sources.files {
        let one = parse_manifest(&file.path.display().to_string(), &file.text);
        for skipped in &one.skipped {
            tracing::debug!("{}: skipped {skipped}", file.path.display());
        }
        parsed.merge(one);
    }
    let compiled = compile(&parsed.inputs, options);
    Loaded {
        compiled,
        read_errors: sources.errors,
        manifest_errors: parsed.errors,
        files: sources.files.len(),
        inputs: parsed.inputs,
    }
}
