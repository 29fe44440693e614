//! Child processes that never outlive the xtask.
//!
//! Invariants: every long-running child is held by a [`Guard`], whose `Drop` stops it, so a `?` error or
//! a panic anywhere still cleans up. Ctrl-C needs no handler: the terminal sends SIGINT to the whole
//! foreground process group, and children stay in ours, so they receive it together with us.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::cmd;

/// A running child that is stopped (SIGTERM, then SIGKILL after a grace period) when dropped.
pub struct Guard {
    name: String,
    child: Child,
}

impl Guard {
    /// Starts `cmd` (stdin closed) under `name`, used in messages.
    pub fn spawn(name: impl Into<String>, cmd: &mut Command) -> Result<Self> {
        let name = name.into();
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {name}: `{}`", cmd::display(cmd)))?;
        Ok(Self { name, child })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes the child's stdout (if it was piped).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// An error if the child has already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!("{} exited early ({status})", self.name),
            Err(e) => bail!("cannot query {}: {e}", self.name),
        }
    }

    /// Waits for the first stdout line starting with `prefix` (the child must have a piped stdout) and
    /// returns the rest of that line. Later output is drained in the background so the child never blocks
    /// on a full pipe.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> Result<String> {
        let stdout = self
            .take_stdout()
            .ok_or_else(|| anyhow!("{}: stdout is not piped", self.name))?;
        let rx = line_channel(stdout, prefix.to_owned());
        let deadline = Instant::now() + timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(rest) => return Ok(rest),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.check_alive()?;
                    if Instant::now() > deadline {
                        bail!(
                            "{} printed no `{prefix}` line within {timeout:?}",
                            self.name
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.check_alive()?;
                    bail!("{} closed stdout without printing `{prefix}`", self.name);
                }
            }
        }
    }
}

fn line_channel(stdout: ChildStdout, prefix: String) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if let Some(rest) = line.trim_end().strip_prefix(&prefix) {
                let _ = tx.send(rest.trim().to_owned());
                // Keep draining: the child may print more and must not block on a full pipe.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
                return;
            }
            line.clear();
        }
        // Drain anything else (non-UTF-8 output included) until the child closes stdout.
        let _ = reader.read_to_end(&mut Vec::new());
    });
    rx
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGTERM first so servers shut down cleanly (nginx stops its workers, rauta drains); std can only
        // send SIGKILL, so ask `kill`.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
