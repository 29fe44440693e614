//! The `rauta` binary: command line, configuration loading and reload, admin endpoints, process lifecycle.
//! The proxying itself lives in `rauta-proxy`, the routing rules in `rauta-routes`.

#![forbid(unsafe_code)]

mod admin;
mod check;
mod cli;
mod config_metrics;
mod error;
mod kernel;
mod kube_source;
mod load;
mod logging;
mod reload;
mod routes_view;
mod run;
mod sources;
mod tls;
mod tls_log;
mod watch;
mod workers;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};

/// Exit code for usage errors, as clap uses.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    install_panic_hook();
    // Bad flags end here with clap's message and exit code 2.
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => {
            logging::init(&args.logging);
            match check::run(&args) {
                Ok(code) => code,
                Err(usage) => usage_error(usage),
            }
        }
        Command::Run(args) => {
            logging::init(&args.logging);
            // The control runtime: loading, reloads, the admin server and signals. Requests are served by
            // the worker threads `run` starts, each with its own runtime (see `workers`).
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(error::FatalError::Runtime)
                .and_then(|runtime| {
                    let result = runtime.block_on(run::run(*args));
                    // Connections still open after the shutdown timeout are cut when the process exits.
                    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
                    result
                });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    // One line, not a log record: this is what a person starting rauta reads.
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Print a usage error the way clap does and return its exit code.
fn usage_error(message: &str) -> ExitCode {
    let error = Cli::command().error(clap::error::ErrorKind::MissingRequiredArgument, message);
    let _ = error.print();
    ExitCode::from(USAGE_ERROR)
}

/// A panic is a bug; print one line that says so instead of a backtrace dump aimed at developers.
fn install_panic_hook() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        eprintln!("error: internal error (a bug in rauta, please report it){location}: {message}");
    }));
}
