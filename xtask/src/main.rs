//! Project automation for RAUTA: `cargo xtask <setup|test|demo|bench>`.
//!
//! Everything here shells out to the tools a developer would type by hand (cargo, apt-get, curl, wrk,
//! nginx), printing each step, so that a failure names the command to re-run.

mod bench;
mod cmd;
mod demo;
mod demo_https;
mod demo_kernel;
mod demo_ws;
mod json;
mod netns_lab;
mod procs;
mod setup;
mod suite;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// RAUTA project automation.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what tests, demo and benchmarks need (idempotent: checks first, installs only what is missing).
    Setup(setup::SetupArgs),
    /// Setup, then fmt, clippy, build and the whole test suite; prints a summary, non-zero exit on failure.
    Test,
    /// Start echo backends and RAUTA from examples/demo.yaml, send requests, show who answered, stop everything.
    Demo,
    /// Benchmarks: route lookup (criterion), HTTP/1.1 through RAUTA vs nginx (wrk), memory per route.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup(args) => setup::run(&args),
        Command::Test => suite::run(),
        Command::Demo => demo::run(),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
