//! `rauta-echo`: the echo backend as a process, for the demo, benchmarks and process-level tests.
//!
//! Prints one line `listening on ADDR` per `--listen` after binding (so a caller that passed port 0 learns
//! the port), then serves until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;

/// A fast HTTP/1.1 echo backend: every answer names the backend in `x-backend`.
#[derive(Parser, Debug)]
#[command(name = "rauta-echo", version)]
struct Args {
    /// Address to listen on (repeatable; port 0 picks a free port).
    #[arg(long, required = true)]
    listen: Vec<SocketAddr>,
    /// Backend name, sent in `x-backend` and in the default body.
    #[arg(long, default_value = "echo")]
    name: String,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rauta-echo: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let mut listeners = Vec::new();
    for addr in &args.listen {
        match TcpListener::bind(addr).await {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("rauta-echo: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    for l in &listeners {
        match l.local_addr() {
            Ok(a) => {
                let _ = writeln!(stdout, "listening on {a}");
            }
            Err(e) => {
                eprintln!("rauta-echo: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Callers read the port from a pipe: the lines must leave now, not when a buffer fills.
    let _ = stdout.flush();
    drop(stdout);

    let mut servers = tokio::task::JoinSet::new();
    for l in listeners {
        servers.spawn(rauta_testkit::echo::serve(l, args.name.clone()));
    }
    // `serve` loops forever; reaching the end means a server task panicked.
    while let Some(done) = servers.join_next().await {
        if let Err(e) = done {
            eprintln!("rauta-echo: server task failed: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::FAILURE
}
