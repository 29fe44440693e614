//! Errors of the kernel-tier loader.

use thiserror::Error;

// The aya errors are boxed: they are large, and errors travel through every `Result` of this crate.

/// Why loading, configuring or attaching the kernel tiers failed.
#[derive(Debug, Error)]
pub enum DataplaneError {
    /// The VIP cannot be served (unspecified address or port 0).
    #[error("invalid VIP {0}: needs a specific address and a non-zero port")]
    InvalidVip(std::net::SocketAddrV4),
    /// The NAT port range is empty or includes port 0.
    #[error("invalid NAT port range {0}-{1}: needs 1 <= first <= last")]
    InvalidNatPorts(u16, u16),
    /// The BPF object could not be parsed or its maps created.
    #[error("loading the BPF object: {0}")]
    Object(#[source] Box<aya::EbpfError>),
    /// The object lacks a program or map this crate expects (object and loader out of step).
    #[error("the BPF object has no {kind} named {name}")]
    Missing {
        /// "program" or "map".
        kind: &'static str,
        /// The expected name.
        name: &'static str,
    },
    /// The kernel rejected the program (the verifier log is in the message) or an attach/test-run call.
    #[error("program {name}: {source}")]
    Program {
        /// The program's name.
        name: &'static str,
        /// The kernel's or aya's error.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// Attaching to an interface failed in driver and in generic (SKB) mode.
    #[error("attaching XDP to {interface}: driver mode: {driver}; generic mode: {skb}")]
    Attach {
        /// The interface.
        interface: String,
        /// The driver-mode error.
        driver: Box<aya::programs::ProgramError>,
        /// The generic-mode error.
        skb: Box<aya::programs::ProgramError>,
    },
    /// A map operation failed.
    #[error("map {name}: {source}")]
    Map {
        /// The map's name.
        name: &'static str,
        /// aya's error.
        #[source]
        source: Box<aya::maps::MapError>,
    },
}

impl DataplaneError {
    pub(crate) fn program(name: &'static str, source: aya::programs::ProgramError) -> Self {
        DataplaneError::Program {
            name,
            source: Box::new(source),
        }
    }

    pub(crate) fn map(name: &'static str, source: aya::maps::MapError) -> Self {
        DataplaneError::Map {
            name,
            source: Box::new(source),
        }
    }
}

impl From<aya::EbpfError> for DataplaneError {
    fn from(e: aya::EbpfError) -> Self {
        DataplaneError::Object(Box::new(e))
    }
}
