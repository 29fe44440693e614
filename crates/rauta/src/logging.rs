//! Log setup: text or JSON lines on stderr (stdout belongs to command output such as `rauta check`).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};
use crate::tls_log::RustlsWarnings;

/// Install the global subscriber. The filter is `--log-level` if given, else `RUST_LOG`, else `info`.
pub fn init(args: &LogArgs) {
    let filter = match &args.log_level {
        // Validated by clap already; fall back rather than panic if that ever changes.
        Some(level) => EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Colours only for a person at a terminal, never in files or log collectors (and never with NO_COLOR).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // try_init: a second call (tests) keeps the first subscriber instead of panicking. Like the
    // builder's own, it also routes `log` records (rustls logs through `log`) into tracing.
    let _ = match args.log_format {
        LogFormat::Text => builder.finish().with(RustlsWarnings::default()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .finish()
            .with(RustlsWarnings::default())
            .try_init(),
    };
}
