//! Map names, layouts and limits shared by the XDP program and its loader.
//!
//! Every value type is `#[repr(C)]` with explicit padding fields (zeroed by the constructors) so that the
//! layout the kernel stores is exactly the one both sides compile, and flags are `u32`, never `bool`
//! (a `bool` with any bit pattern but 0 or 1 would be undefined behaviour when read back).
#![forbid(unsafe_code)]

/// Name of the VIP configuration map (`BPF_MAP_TYPE_ARRAY`, one [`VipConfig`] at index 0). Written by
/// userspace; read by the XDP program on every packet.
pub const VIP_MAP: &str = "RAUTA_VIP";

/// Name of the per-CPU counter map (`BPF_MAP_TYPE_PERCPU_ARRAY` of `u64`, [`COUNTER_SLOTS`] entries,
/// indexed by [`crate::reason::Reason`]). Written by the XDP program; userspace sums the CPUs.
pub const COUNTERS_MAP: &str = "RAUTA_COUNTERS";

/// Name of the per-CPU scratch map (`BPF_MAP_TYPE_PERCPU_ARRAY`, one entry): buffers too large for the
/// 512-byte BPF stack. Private to the XDP program.
pub const SCRATCH_MAP: &str = "RAUTA_SCRATCH";

/// Name of the XDP program that implements Tier 1.
pub const XDP_PROGRAM: &str = "rauta_xdp";

/// Name of a trivial XDP program that passes every packet. veth delivers `XDP_TX` frames only when the
/// peer device has an XDP program attached, so test topologies attach this one to the peer.
pub const XDP_PASS_PROGRAM: &str = "rauta_xdp_pass";

/// Number of slots in the counter map. Larger than the number of reasons so that new reasons do not
/// change the map's size (a loader and an object of neighbouring versions still agree).
pub const COUNTER_SLOTS: u32 = 32;

/// Largest TCP header (doff = 15).
pub const TCP_MAX_HEADER: usize = 60;

/// Size of the SYN-ACK the XDP program sends: Ethernet (14) + IPv4 without options (20) + TCP with the
/// MSS option only (24).
pub const SYNACK_V4_LEN: usize = 58;

/// `VipConfig::enabled` value that turns the program on.
pub const VIP_ENABLED: u32 = 1;

/// The virtual IP and port Tier 1 answers for. Traffic to any other destination passes untouched.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipConfig {
    /// IPv4 address, in network byte order as it sits in the packet (`u32::from_ne_bytes(octets)`).
    pub addr_be: u32,
    /// TCP port, in network byte order as it sits in the packet (`u16::from_ne_bytes(port.to_be_bytes())`).
    pub port_be: u16,
    /// Explicit padding; always zero.
    pub _pad: u16,
    /// [`VIP_ENABLED`] to answer for this VIP; anything else passes all traffic.
    pub enabled: u32,
}

impl VipConfig {
    /// An enabled VIP for `octets:port` (port in host order).
    pub const fn new(octets: [u8; 4], port: u16) -> Self {
        VipConfig {
            addr_be: u32::from_ne_bytes(octets),
            port_be: u16::from_ne_bytes(port.to_be_bytes()),
            _pad: 0,
            enabled: VIP_ENABLED,
        }
    }

    /// The address octets.
    pub const fn octets(&self) -> [u8; 4] {
        self.addr_be.to_ne_bytes()
    }

    /// The port in host byte order.
    pub const fn port(&self) -> u16 {
        u16::from_be_bytes(self.port_be.to_ne_bytes())
    }
}

// The layout is part of the kernel/userspace contract: fail the build if it changes by accident.
const _: () = assert!(core::mem::size_of::<VipConfig>() == 12);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_config_round_trips_network_order() {
        let vip = VipConfig::new([198, 18, 0, 1], 8080);
        assert_eq!(vip.octets(), [198, 18, 0, 1]);
        assert_eq!(vip.port(), 8080);
        assert_eq!(vip.port_be.to_ne_bytes(), 8080u16.to_be_bytes());
        assert_eq!(vip.enabled, VIP_ENABLED);
    }

    #[test]
    fn every_reason_fits_the_counter_map() {
        assert!((crate::reason::Reason::COUNT as u32) <= COUNTER_SLOTS);
    }
}
