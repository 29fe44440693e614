//! Stable reason codes: what the XDP program did with a packet and why.
//!
//! Each code indexes the per-CPU counter map ([`crate::maps::COUNTERS_MAP`]) and doubles as a bounded
//! metric label ([`Reason::name`]). The numbers are part of the kernel/userspace contract: append new
//! codes, never renumber or reuse one.
#![forbid(unsafe_code)]

/// Why the XDP program returned the action it did. `XDP_PASS` means "the local stack (Tier 3) handles it".
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Not IPv4 nor IPv6 (ARP, VLAN-tagged, ...): passed.
    NotIpPass = 0,
    /// IPv6: passed untouched (Tier 1 is IPv4-only in this increment).
    Ipv6Pass = 1,
    /// Too short to hold an Ethernet and an IPv4 header, or not a valid IPv4 header (version, IHL below
    /// 5): passed, since the destination cannot be trusted; the stack drops it.
    TruncatedPass = 2,
    /// IPv4 but not TCP: passed.
    NotTcpPass = 3,
    /// TCP to another address or port than the VIP: passed.
    NotVipPass = 4,
    /// An IPv4 fragment to the VIP address: passed (XDP cannot reassemble; the stack can).
    FragmentPass = 5,
    /// IPv4 header with options to the VIP address: passed (the stack handles them).
    IpOptionsPass = 6,
    /// To the VIP but malformed (TCP header truncated, data offset below 5 or past the IP length, IP
    /// length past the frame, SYN with FIN or RST): dropped, as the stack would.
    MalformedDrop = 7,
    /// A SYN to the VIP with a bad IPv4 or TCP checksum: dropped before it costs a SYN-ACK.
    BadChecksumDrop = 8,
    /// A SYN to the VIP answered with a SYN-cookie SYN-ACK (`XDP_TX`).
    SynCookieSent = 9,
    /// A SYN to the VIP that carries data (TCP Fast Open): passed to the stack.
    SynWithDataPass = 10,
    /// An ACK to the VIP with no local connection and a valid cookie: passed (the stack, with
    /// `tcp_syncookies=2`, turns it into a connection).
    AckCookieOk = 11,
    /// An ACK to the VIP with no local connection and an invalid or expired cookie: dropped (no RST yet).
    AckCookieBad = 12,
    /// A segment of a connection the local stack already has (established, closing, time-wait): passed.
    SocketPass = 13,
    /// A segment to the VIP with no local connection that is neither SYN nor ACK (RST, bare FIN, SYN-ACK,
    /// no flags): passed; the stack answers as it would without Tier 1.
    OtherFlagsPass = 14,
    /// The VIP map is empty or disabled: every packet passes.
    VipDisabledPass = 15,
    /// A helper failed where it should not (cookie generation, resizing or writing the packet): passed, so
    /// that a bug in Tier 1 degrades to Tier 3 instead of dropping clients.
    InternalErrorPass = 16,
}

impl Reason {
    /// Number of reasons; every code is below it.
    pub const COUNT: usize = 17;

    /// Every reason, in code order.
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::NotIpPass,
        Reason::Ipv6Pass,
        Reason::TruncatedPass,
        Reason::NotTcpPass,
        Reason::NotVipPass,
        Reason::FragmentPass,
        Reason::IpOptionsPass,
        Reason::MalformedDrop,
        Reason::BadChecksumDrop,
        Reason::SynCookieSent,
        Reason::SynWithDataPass,
        Reason::AckCookieOk,
        Reason::AckCookieBad,
        Reason::SocketPass,
        Reason::OtherFlagsPass,
        Reason::VipDisabledPass,
        Reason::InternalErrorPass,
    ];

    /// The counter-map index of this reason.
    #[inline(always)]
    pub const fn index(self) -> u32 {
        self as u32
    }

    /// A stable snake_case name, usable as a metric label.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::NotIpPass => "not_ip_pass",
            Reason::Ipv6Pass => "ipv6_pass",
            Reason::TruncatedPass => "truncated_pass",
            Reason::NotTcpPass => "not_tcp_pass",
            Reason::NotVipPass => "not_vip_pass",
            Reason::FragmentPass => "fragment_pass",
            Reason::IpOptionsPass => "ip_options_pass",
            Reason::MalformedDrop => "malformed_drop",
            Reason::BadChecksumDrop => "bad_checksum_drop",
            Reason::SynCookieSent => "syn_cookie_sent",
            Reason::SynWithDataPass => "syn_with_data_pass",
            Reason::AckCookieOk => "ack_cookie_ok",
            Reason::AckCookieBad => "ack_cookie_bad",
            Reason::SocketPass => "socket_pass",
            Reason::OtherFlagsPass => "other_flags_pass",
            Reason::VipDisabledPass => "vip_disabled_pass",
            Reason::InternalErrorPass => "internal_error_pass",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_and_in_order() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(reason.index() as usize, i, "{reason:?}");
        }
    }

    #[test]
    fn names_are_unique() {
        for a in Reason::ALL {
            for b in Reason::ALL {
                if a != b {
                    assert_ne!(a.name(), b.name());
                }
            }
        }
    }
}
