//! Running wrk and reading its report.

use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd;

/// What one wrk run measured.
#[derive(Debug, Clone, Default)]
pub struct WrkResult {
    /// Requests per second.
    pub rps: f64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
    /// Socket errors plus non-2xx/3xx answers: a run with errors measured something else.
    pub errors: u64,
    /// Requests completed in the run.
    pub requests: u64,
}

/// Runs `wrk --latency` against `url`, pinned to `cpus` (a taskset list) when given.
pub fn run(
    url: &str,
    threads: u32,
    connections: u32,
    seconds: u32,
    cpus: Option<&str>,
) -> Result<WrkResult> {
    let mut c = match cpus {
        Some(list) => {
            let mut c = Command::new("taskset");
            c.args(["-c", list, "wrk"]);
            c
        }
        None => Command::new("wrk"),
    };
    c.args([
        "--latency",
        "-t",
        &threads.to_string(),
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{seconds}s"),
        url,
    ]);
    let out = cmd::output(&mut c)?;
    parse(&out).with_context(|| format!("cannot read wrk's report:\n{out}"))
}

/// Parses wrk's text report.
pub fn parse(out: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut have_rps = false;
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => {
                r.rps = v.parse()?;
                have_rps = true;
            }
            [n, "requests", "in", ..] => r.requests = n.parse()?,
            ["50%", v] => r.p50_ms = millis(v)?,
            ["99%", v] => r.p99_ms = millis(v)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                // "Socket errors: connect 0, read 0, write 0, timeout 0"
                r.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    anyhow::ensure!(have_rps, "no Requests/sec line");
    Ok(r)
}

/// "812.00us", "1.23ms", "2.01s" -> milliseconds.
fn millis(v: &str) -> Result<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    Ok(num
        .parse::<f64>()
        .with_context(|| format!("bad latency {v:?}"))?
        * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_wrk_report() {
        let out = "Running 10s test @ http://127.0.0.1:1/\n  1 threads and 50 connections\n\
                   Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   1.01ms  200.00us   5.00ms   90.00%\n\
                   Latency Distribution\n     50%  812.00us\n     75%    1.10ms\n     90%    1.50ms\n     99%    2.01ms\n\
                   500000 requests in 10.00s, 60.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n\
                   Non-2xx or 3xx responses: 4\nRequests/sec:  49999.50\nTransfer/sec:      6.00MB\n";
        let r = parse(out).unwrap();
        assert_eq!(r.rps, 49999.5);
        assert!((r.p50_ms - 0.812).abs() < 1e-9);
        assert!((r.p99_ms - 2.01).abs() < 1e-9);
        assert_eq!(r.errors, 7);
        assert_eq!(r.requests, 500000);
    }
}
