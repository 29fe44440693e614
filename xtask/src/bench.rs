//! `cargo xtask bench`.
use anyhow::Result;
/// Flags of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}
/// Runs the benchmarks.
pub fn run(_args: &BenchArgs) -> Result<()> {
    anyhow::bail!("bench: not written yet")
}
