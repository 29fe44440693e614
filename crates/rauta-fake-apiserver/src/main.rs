//! `rauta-fake-apiserver [--listen ADDR] [--history N]`: run the fake kube-apiserver until SIGINT/SIGTERM,
//! printing `listening http://ADDR` on stdout once bound (for scripts and manual runs with kubectl).

use std::net::SocketAddr;
use std::process::ExitCode;

use rauta_fake_apiserver::{Config, FakeApiServer};

fn usage(problem: &str) -> ExitCode {
    eprintln!("error: {problem}\nusage: rauta-fake-apiserver [--listen ADDR] [--history N]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--listen", Some(v)) => match v.parse() {
                Ok(addr) => listen = addr,
                Err(_) => return usage(&format!("bad --listen {v:?}")),
            },
            ("--history", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => config.history = n,
                _ => return usage(&format!("bad --history {v:?}")),
            },
            _ => return usage(&format!("unexpected argument {arg:?}")),
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match FakeApiServer::start(listen, config).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("error: cannot listen on {listen}: {error}");
                return ExitCode::FAILURE;
            }
        };
        println!("listening {}", server.url());
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    eprintln!("error: cannot install a SIGTERM handler: {error}");
                    return ExitCode::FAILURE;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        drop(server);
        ExitCode::SUCCESS
    })
}
