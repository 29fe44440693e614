//! Attaches RAUTA's XDP pass program (`rauta_xdp_pass`) to one interface in driver mode and holds it there
//! until SIGTERM or SIGINT, then detaches it and exits.
//!
//! ```text
//! xdp_pass --dev NAME
//! ```
//!
//! Why: on veth, driver-mode `XDP_TX` and `XDP_REDIRECT` frames reach the peer device only if the peer
//! runs NAPI, which it does while it has an XDP program of its own. The kernel benchmark of `cargo xtask
//! bench --kernel` runs this in the client's and the backend's namespaces (`ip netns exec NS xdp_pass
//! --dev PEER`) so that Tier 1 can run in driver mode on the node's veths; xtask cannot load BPF itself.
//!
//! Protocol: prints `attached NAME` on stdout once the program is attached (the caller waits for that
//! line), and exits 0 after detaching. Any failure is printed on stderr with exit code 1, before the
//! `attached` line is ever printed.
//!
//! Invariants: the program is attached only while this process lives. SIGTERM and SIGINT detach it
//! explicitly; if the parent dies without signalling, `PR_SET_PDEATHSIG` turns that into a SIGTERM, so a
//! killed caller never leaves a process (and with it a network namespace) behind.

use std::io::Write as _;
use std::process::ExitCode;

use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use rauta_common::maps::XDP_PASS_PROGRAM;
use rauta_dataplane::object::BPF_OBJECT;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xdp_pass: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let dev = device_from_args(std::env::args().skip(1))?;
    // Block the signals before anything else: a SIGTERM that arrives while we attach is then held pending
    // and seen by `sigwait` below instead of killing us with the program still attached.
    let signals = blocked_signals()?;
    // SAFETY: prctl with PR_SET_PDEATHSIG and a signal number has no memory effects.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) } != 0 {
        return Err(format!(
            "prctl(PR_SET_PDEATHSIG): {}",
            std::io::Error::last_os_error()
        ));
    }

    let mut ebpf =
        Ebpf::load(BPF_OBJECT).map_err(|e| format!("cannot load the BPF object: {e}"))?;
    let program: &mut Xdp = ebpf
        .program_mut(XDP_PASS_PROGRAM)
        .ok_or_else(|| format!("no program {XDP_PASS_PROGRAM} in the BPF object"))?
        .try_into()
        .map_err(|e| format!("{XDP_PASS_PROGRAM} is not an XDP program: {e}"))?;
    program
        .load()
        .map_err(|e| format!("cannot load {XDP_PASS_PROGRAM}: {e}"))?;
    let link = program
        .attach(&dev, XdpMode::Driver)
        .map_err(|e| format!("cannot attach {XDP_PASS_PROGRAM} to {dev} in driver mode: {e}"))?;
    println!("attached {dev}");
    std::io::stdout()
        .flush()
        .map_err(|e| format!("stdout: {e}"))?;

    let mut signal: libc::c_int = 0;
    // SAFETY: `signals` is an initialised signal set and `signal` a valid place for the result.
    let rc = unsafe { libc::sigwait(&signals, &mut signal) };
    let detached = program.detach(link);
    if rc != 0 {
        return Err(format!(
            "sigwait: {}",
            std::io::Error::from_raw_os_error(rc)
        ));
    }
    detached.map_err(|e| format!("cannot detach {XDP_PASS_PROGRAM} from {dev}: {e}"))
}

/// The interface name of `--dev NAME` (or `--dev=NAME`), the only argument.
fn device_from_args(mut args: impl Iterator<Item = String>) -> Result<String, String> {
    const USAGE: &str = "usage: xdp_pass --dev NAME";
    let dev = match (args.next().as_deref(), args.next()) {
        (Some("--dev"), Some(name)) => name,
        (Some(arg), None) if arg.starts_with("--dev=") => arg["--dev=".len()..].to_owned(),
        _ => return Err(USAGE.to_owned()),
    };
    if dev.is_empty() || args.next().is_some() {
        return Err(USAGE.to_owned());
    }
    Ok(dev)
}

/// SIGTERM and SIGINT, blocked in this thread (the only one) so that `sigwait` receives them.
fn blocked_signals() -> Result<libc::sigset_t, String> {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset and pthread_sigmask only read and write
    // the sets passed to them.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(format!(
                "pthread_sigmask: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        Ok(set)
    }
}
