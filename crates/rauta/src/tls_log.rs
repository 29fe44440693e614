//! rustls' warnings, at most one line a minute.
//!
//! rustls logs a WARN about what a peer sent: an IP address as SNI (wrk and other OpenSSL clients send
//! the address they connect to), a duplicate SNI, a warning alert. One per handshake lets any client
//! flood the log, so [`RustlsWarnings`] lets one through per [`INTERVAL`] and drops the rest (the
//! handshakes themselves go on: rustls ignores such an SNI, and the default certificate answers).
//! Everything else, rustls' errors included, passes untouched.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// At most one rustls warning per this long reaches the log.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// A layer that rate-limits rustls' WARN events for the whole subscriber (see the module doc).
#[derive(Debug, Default)]
pub struct RustlsWarnings {
    /// When a warning last went through; `None` before the first.
    last: Mutex<Option<Instant>>,
    /// Warnings dropped since the start (for tests and debugging; not exported).
    dropped: AtomicU64,
}

impl RustlsWarnings {
    /// Whether a warning seen at `now` goes through (and if so, the next one waits [`INTERVAL`]).
    fn admit(&self, now: Instant) -> bool {
        // Poisoning needs a panic while holding the lock, which only assigns an `Instant`.
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(at) if now.saturating_duration_since(at) < INTERVAL => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

impl<S: Subscriber> Layer<S> for RustlsWarnings {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        if *event.metadata().level() != Level::WARN || !from_rustls(event) {
            return true;
        }
        self.admit(Instant::now())
    }
}

/// Whether `event` comes from rustls: its target, or, for a `log` record bridged by `tracing-log` (how
/// rustls logs), the record's target in the `log.target` field.
fn from_rustls(event: &Event<'_>) -> bool {
    let target = event.metadata().target();
    if target != "log" {
        return is_rustls(target);
    }
    let mut visitor = LogTarget(false);
    event.record(&mut visitor);
    visitor.0
}

fn is_rustls(target: &str) -> bool {
    target == "rustls" || target.starts_with("rustls::")
}

/// Finds whether a bridged `log` record's target is rustls.
struct LogTarget(bool);

impl Visit for LogTarget {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "log.target" && is_rustls(value) {
            self.0 = true;
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval() {
        let limit = RustlsWarnings::default();
        let t0 = Instant::now();
        assert!(limit.admit(t0));
        for s in 1..60 {
            assert!(!limit.admit(t0 + Duration::from_secs(s)));
        }
        assert!(limit.admit(t0 + INTERVAL));
        assert!(!limit.admit(t0 + INTERVAL + Duration::from_secs(1)));
        assert_eq!(limit.dropped.load(Ordering::Relaxed), 60);
    }

    #[test]
    fn targets() {
        assert!(is_rustls("rustls"));
        assert!(is_rustls("rustls::msgs::handshake"));
        assert!(!is_rustls("rustls_pemfile"));
        assert!(!is_rustls("rauta_proxy"));
    }
}
