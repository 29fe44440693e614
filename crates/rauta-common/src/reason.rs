//! Stable reason codes: what the BPF programs (XDP and TC egress) did with a packet and why.
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
    /// A pure ACK (no data) to the VIP with no flow and a valid cookie: the client's side of the handshake
    /// is complete; absorbed (dropped) — the local stack never sees it, the hand-off starts with the first
    /// data segment. (Until increment 2 these were passed to the stack.)
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
    /// The client's first data segment (valid cookie, no flow yet): stored, and the packet turned into the
    /// client's SYN to the local listener (`XDP_PASS`).
    HandoffSynReplayed = 17,
    /// A retransmission of the first data segment of a flow whose listener socket does not exist yet: the
    /// segment is stored again and the SYN replayed again (`XDP_PASS`).
    HandoffRetransmitReplayed = 18,
    /// A first data segment too large to store (above `PENDING_PAYLOAD_MAX`): dropped.
    HandoffOversizeDrop = 19,
    /// A segment of a flow whose listener socket does not exist yet (later data segments of a multi-segment
    /// first request, duplicate ACKs, FIN, RST): dropped; the client retransmits data after its RTO. A RST
    /// also deletes the flow.
    HandoffPendingDrop = 20,
    /// A segment of a handed-off flow with offset 0: passed unchanged.
    FlowPass = 21,
    /// A segment of a handed-off flow with a non-zero offset: ack translated into the listener's sequence
    /// space, passed.
    FlowTranslatedPass = 22,
    /// TC egress: a packet that is not a flow's, or a flow's that needs no change: passed.
    TcPass = 23,
    /// TC egress: the listener's SYN-ACK to a replayed SYN, with the cookie Tier 1 issued (offset 0), turned
    /// into the client's ACK carrying the stored segment and redirected to ingress.
    TcHandoffAck = 24,
    /// TC egress: as `tc_handoff_ack`, but the listener's ISN differs from Tier 1's cookie (minute counter
    /// ticked, or another MSS bucket): the flow records the offset and is translated both ways.
    TcHandoffAckOffset = 25,
    /// TC egress: the stack's RST to a replayed SYN (nothing listens): moved into the client's sequence
    /// space and sent to the client; the flow is deleted.
    TcHandoffRst = 26,
    /// TC egress: a listener segment of a flow with a non-zero offset: seq translated.
    TcTranslated = 27,
    /// TC egress: a helper failed or the stored segment is missing: the SYN-ACK is dropped (the client
    /// retransmits its segment, which replays the SYN again).
    TcInternalError = 28,
    /// A later segment of a first request (seq right after the stored data) arriving before the listener's
    /// socket exists: held in `RAUTA_HELD` (dropped here, injected by TC behind the hand-off ACK).
    HandoffSegmentHeld = 29,
    /// TC egress: the listener's first pure ACK on the new socket, turned into the held segments (all but
    /// the last cloned) and redirected to ingress; the listener's next ACK covers them all.
    TcHeldInjected = 30,
    /// A routing hit (Tier 1): the first segment is stored and the packet turned into a SYN from an allocated
    /// NAT port to the backend Maglev chose (`XDP_REDIRECT`/`XDP_TX`). One per Tier 1 request.
    SpliceSynSent = 31,
    /// The client retransmitted its first segment while the backend had not answered the SYN: the SYN is
    /// sent again (at most `SYN_TRIES` in all).
    SpliceSynResent = 32,
    /// The backend refused the SYN or stayed silent for `SYN_TRIES` SYNs: the splice is forgotten and the
    /// client's retransmitted first segment is handed to Tier 3 (which retries or answers 502/503).
    SpliceFallback = 33,
    /// A routing hit, but no free NAT port among the probes: handed to Tier 3.
    SpliceNatExhausted = 34,
    /// A routing hit, but the FIB has no usable path to the endpoint (no route, neighbour not resolved yet,
    /// forwarding disabled on the interface): handed to Tier 3.
    SpliceNoPath = 35,
    /// The backend's SYN-ACK to our SYN: its ISN recorded, passed to the TC ingress program, which sends
    /// the ACK carrying the request.
    SpliceSynAck = 36,
    /// The backend answered our SYN with a RST: the splice is marked failed (see `splice_fallback`).
    SpliceBackendRefused = 37,
    /// A client segment of a splice translated onto the backend leg and forwarded.
    SpliceClientTranslated = 38,
    /// A backend segment of a splice translated into the client's connection and forwarded.
    SpliceBackendTranslated = 39,
    /// Client data on a splice that cannot be a request's start nor a retransmission: past a gap (an
    /// earlier segment was lost; the client retransmits it), or before the splice is established.
    /// Dropped, so that nothing reaches a backend its route does not name.
    SpliceFollowupDrop = 40,
    /// A segment that does not fit the splice's state (client data before the backend answered, a
    /// backend segment acknowledging nothing we sent): dropped.
    SpliceStrayDrop = 41,
    /// The client's first segment again after the backend answered: passed to TC ingress, which sends the
    /// ACK with the request again (ours may have been lost).
    SpliceRequestResend = 42,
    /// TC ingress: the ACK carrying the stored request built and sent to the
    /// backend.
    TcSpliceAck = 43,
    /// TC ingress: the splice's state or stored request is missing, or a helper failed: dropped (the
    /// backend retransmits its SYN-ACK, the client its first segment).
    TcSpliceError = 44,
    /// Forwarding a spliced packet to another interface failed: dropped (TCP retransmits).
    SpliceRedirectError = 45,
    /// A routing hit whose request exceeds the MSS: handed to Tier 3.
    SpliceTooLarge = 46,
    /// A routing hit whose head carries a header that changes the framing or the connection
    /// (`Connection`, `Content-*`, `Transfer-Encoding`, `Upgrade`, `Expect`): the splice carries no body
    /// and keeps the connection's framing to itself, so Tier 3 serves it.
    SpliceHeaderUnsupported = 47,
    /// A segment of a splice whose endpoint left the route table: the client gets a RST (XDP_TX, or the
    /// backend's segment turned into one), and the splice is forgotten.
    SpliceReset = 48,
    /// A follow-up request on a kept-alive splice routed to the splice's own backend: translated and
    /// forwarded on the same leg.
    SpliceFollowupSame = 49,
    /// A follow-up request routed elsewhere (another backend, or Tier 3) after the previous response
    /// ended: the old leg is dropped and the request starts over like a first segment (stored, SYN
    /// replayed, routed: a fresh splice or the hand-off to Tier 3).
    SpliceSwitch = 50,
    /// A follow-up request routed elsewhere while the previous response is still under way (pipelined):
    /// dropped unacknowledged; the client retransmits it, by when the response has ended.
    SpliceFollowupEarly = 51,
    /// A [`Reason::SpliceSwitch`] whose previous response the kernel could not frame (chunked, no length,
    /// a head beyond the first segment): switched because the client had acknowledged everything the
    /// backend sent, which a client that does not pipeline only does once the response ended.
    SpliceSwitchUnframed = 52,
    /// A response head parsed on a splice (its end is known: `Content-Length`, or no body).
    SpliceResponseFramed = 53,
    /// A response head the kernel cannot frame (chunked, no length, 1xx, head beyond the segment).
    SpliceResponseUnframed = 54,
    /// TC: the backend leg a kept-alive connection moved away from is closed with a RST (cloned out
    /// of the packet that completes the move: the new backend's or the listener's SYN-ACK).
    SpliceOldLegClosed = 55,
    /// XDP: a splice took over a NAT port whose slot was still held by a splice that no longer exists
    /// (evicted from the splice table; see `crate::splice::NAT_MAP`). Counted in addition to the hit.
    SpliceNatReclaimed = 56,
}

impl Reason {
    /// Number of reasons; every code is below it.
    pub const COUNT: usize = 57;

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
        Reason::HandoffSynReplayed,
        Reason::HandoffRetransmitReplayed,
        Reason::HandoffOversizeDrop,
        Reason::HandoffPendingDrop,
        Reason::FlowPass,
        Reason::FlowTranslatedPass,
        Reason::TcPass,
        Reason::TcHandoffAck,
        Reason::TcHandoffAckOffset,
        Reason::TcHandoffRst,
        Reason::TcTranslated,
        Reason::TcInternalError,
        Reason::HandoffSegmentHeld,
        Reason::TcHeldInjected,
        Reason::SpliceSynSent,
        Reason::SpliceSynResent,
        Reason::SpliceFallback,
        Reason::SpliceNatExhausted,
        Reason::SpliceNoPath,
        Reason::SpliceSynAck,
        Reason::SpliceBackendRefused,
        Reason::SpliceClientTranslated,
        Reason::SpliceBackendTranslated,
        Reason::SpliceFollowupDrop,
        Reason::SpliceStrayDrop,
        Reason::SpliceRequestResend,
        Reason::TcSpliceAck,
        Reason::TcSpliceError,
        Reason::SpliceRedirectError,
        Reason::SpliceTooLarge,
        Reason::SpliceHeaderUnsupported,
        Reason::SpliceReset,
        Reason::SpliceFollowupSame,
        Reason::SpliceSwitch,
        Reason::SpliceFollowupEarly,
        Reason::SpliceSwitchUnframed,
        Reason::SpliceResponseFramed,
        Reason::SpliceResponseUnframed,
        Reason::SpliceOldLegClosed,
        Reason::SpliceNatReclaimed,
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
            Reason::HandoffSynReplayed => "handoff_syn_replayed",
            Reason::HandoffRetransmitReplayed => "handoff_retransmit_replayed",
            Reason::HandoffOversizeDrop => "handoff_oversize_drop",
            Reason::HandoffPendingDrop => "handoff_pending_drop",
            Reason::FlowPass => "flow_pass",
            Reason::FlowTranslatedPass => "flow_translated_pass",
            Reason::TcPass => "tc_pass",
            Reason::TcHandoffAck => "tc_handoff_ack",
            Reason::TcHandoffAckOffset => "tc_handoff_ack_offset",
            Reason::TcHandoffRst => "tc_handoff_rst",
            Reason::TcTranslated => "tc_translated",
            Reason::TcInternalError => "tc_internal_error",
            Reason::HandoffSegmentHeld => "handoff_segment_held",
            Reason::TcHeldInjected => "tc_held_injected",
            Reason::SpliceSynSent => "splice_syn_sent",
            Reason::SpliceSynResent => "splice_syn_resent",
            Reason::SpliceFallback => "splice_fallback",
            Reason::SpliceNatExhausted => "splice_nat_exhausted",
            Reason::SpliceNoPath => "splice_no_path",
            Reason::SpliceSynAck => "splice_synack",
            Reason::SpliceBackendRefused => "splice_backend_refused",
            Reason::SpliceClientTranslated => "splice_client_translated",
            Reason::SpliceBackendTranslated => "splice_backend_translated",
            Reason::SpliceFollowupDrop => "splice_followup_drop",
            Reason::SpliceStrayDrop => "splice_stray_drop",
            Reason::SpliceRequestResend => "splice_request_resend",
            Reason::TcSpliceAck => "tc_splice_ack",
            Reason::TcSpliceError => "tc_splice_error",
            Reason::SpliceRedirectError => "splice_redirect_error",
            Reason::SpliceTooLarge => "splice_too_large",
            Reason::SpliceHeaderUnsupported => "splice_header_unsupported",
            Reason::SpliceReset => "splice_reset",
            Reason::SpliceFollowupSame => "splice_followup_same",
            Reason::SpliceSwitch => "splice_switch",
            Reason::SpliceFollowupEarly => "splice_followup_early",
            Reason::SpliceSwitchUnframed => "splice_switch_unframed",
            Reason::SpliceResponseFramed => "splice_response_framed",
            Reason::SpliceResponseUnframed => "splice_response_unframed",
            Reason::SpliceOldLegClosed => "splice_old_leg_closed",
            Reason::SpliceNatReclaimed => "splice_nat_reclaimed",
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
