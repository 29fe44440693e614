//! `rauta check`: load and compile like `run` would, print the result, serve nothing.
//!
//! Exit status: 0 if everything was read, parsed and compiled without a single problem; 1 otherwise. Every
//! compiler diagnostic counts: each one means a path, backend or object of the manifests is not served as
//! written.

use std::io::Write;
use std::process::ExitCode;

use rauta_routes::CompileOptions;
use serde_json::json;

use crate::cli::{CheckArgs, OutputFormat};
use crate::load::{load, Loaded};
use crate::routes_view;

/// Run the check; `Err` is a usage error (exit 2).
pub fn run(args: &CheckArgs) -> Result<ExitCode, &'static str> {
    if args.config.manifests.is_empty() {
        return Err("rauta check needs at least one --manifests PATH");
    }
    let options = CompileOptions {
        ingress_class: args.config.ingress_class.clone(),
        default_backend: args.config.default_backend.clone(),
    };
    let loaded = load(&args.config.manifests, &options);
    let tls = tls_problems(&loaded, &options.ingress_class);
    let mut problems = problems(&loaded);
    problems.extend(tls.iter().cloned());
    let failed = !problems.is_empty();

    let mut stdout = std::io::stdout().lock();
    let written = match args.output {
        OutputFormat::Json => {
            // The `/routes` document (`routes`, `defaultBackends`) with the outcome added at the top level,
            // so that tools reading either get the same shape.
            let mut document = routes_view::to_json(&loaded.compiled.table);
            if let Some(object) = document.as_object_mut() {
                object.insert("ok".into(), json!(!failed));
                object.insert("files".into(), json!(loaded.files));
                let errors: Vec<String> = loaded
                    .read_errors
                    .iter()
                    .map(ToString::to_string)
                    .chain(loaded.manifest_errors.iter().map(ToString::to_string))
                    .collect();
                object.insert("errors".into(), json!(errors));
                object.insert("diagnostics".into(), json!(loaded.compiled.diagnostics));
                object.insert("tls".into(), json!(tls));
            }
            serde_json::to_string_pretty(&document)
                .map_err(std::io::Error::other)
                .and_then(|text| writeln!(stdout, "{text}"))
        }
        OutputFormat::Text => {
            let mut text = routes_view::render_text(&loaded.compiled.table);
            for problem in &problems {
                text.push_str(&format!("error: {problem}\n"));
            }
            let routes = loaded.compiled.table.routes().len();
            if failed {
                text.push_str(&format!(
                    "check failed: {} problem(s); {routes} route(s) from {} file(s) would be served\n",
                    problems.len(),
                    loaded.files
                ));
            } else {
                text.push_str(&format!(
                    "ok: {routes} route(s) from {} file(s)\n",
                    loaded.files
                ));
            }
            write!(stdout, "{text}")
        }
    };
    // A closed pipe (`rauta check | head`) is not worth a panic; the exit status still tells.
    if let Err(error) = written.and_then(|()| stdout.flush()) {
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write output: {error}");
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The TLS Secrets named by our Ingresses that `run` could not serve, one line each: their hosts would get
/// the default certificate.
fn tls_problems(loaded: &Loaded, ingress_class: &str) -> Vec<String> {
    let default = match rauta_tls::generate_default_certificate() {
        Ok(default) => std::sync::Arc::new(default),
        Err(error) => return vec![error.to_string()],
    };
    rauta_tls::CertStore::build(&loaded.inputs, ingress_class, default)
        .problems()
        .iter()
        .map(|p| {
            format!(
                "Secret {}/{}: {} (TLS hosts {} would get the default certificate)",
                p.namespace,
                p.secret,
                p.detail,
                p.hosts.join(", ")
            )
        })
        .collect()
}

/// Every problem, as one line each, in the order they were found.
fn problems(loaded: &Loaded) -> Vec<String> {
    let mut out: Vec<String> = loaded.read_errors.iter().map(ToString::to_string).collect();
    out.extend(loaded.manifest_errors.iter().map(ToString::to_string));
    out.extend(loaded.compiled.diagnostics.iter().map(ToString::to_string));
    out
}
