//! Packet-in/packet-out tests of the hand-off to the local listener through BPF_PROG_RUN: the XDP
//! program turns the client's first data segment into the client's SYN, the TC egress program turns the
//! listener's SYN-ACK into the client's ACK carrying the stored segment, and both translate sequence
//! numbers when the listener's ISN differs from Tier 1's cookie. The two programs share their maps, so
//! running them in turn walks a flow through its states without any socket. Needs root.

mod support;

use std::net::{Ipv4Addr, SocketAddrV4};

use rauta_common::maps::{
    FlowKey, FLOW_ACK_SENT, FLOW_REPLAYED, FLOW_SPLICED, PENDING_PAYLOAD_MAX,
};
use rauta_common::tcpopt;
use rauta_dataplane::{
    KernelTiers, PacketRun, Reason, TableSizes, TcRun, XdpAction, TC_ACT_OK, TC_ACT_REDIRECT,
};
use support::options::{options_of, ts_options};
use support::packet::{self, Tcp4, ACK, CLIENT_MAC, FIN, RST, SERVER_MAC, SYN};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PORT: u16 = 8080;
const PSH: u8 = 0x08;
const REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\n\r\n";

macro_rules! needs_root {
    ($name:expr) => {
        if !support::root_or_skip($name) {
            return;
        }
    };
}

fn tiers() -> KernelTiers {
    let mut t = KernelTiers::load(SocketAddrV4::new(VIP, PORT), &[])
        .expect("load the programs (is this root?)");
    // These cases count the recorded decisions.
    t.record_decisions(true).unwrap();
    t
}

fn key(sport: u16) -> FlowKey {
    FlowKey::new(CLIENT.octets(), sport, VIP.octets(), PORT)
}

/// Asserts that exactly one counter moved, by one, for `reason`.
fn one_count(t: &KernelTiers, before: rauta_dataplane::Counters, reason: Reason) {
    let delta = t.counters().unwrap().since(&before);
    assert_eq!(
        delta.non_zero(),
        vec![(reason.name(), 1)],
        "counter changes"
    );
}

fn xdp(t: &KernelTiers, input: &[u8], reason: Reason) -> PacketRun {
    let before = t.counters().unwrap();
    let run = t.run_once(input).unwrap();
    one_count(t, before, reason);
    run
}

fn tc(t: &KernelTiers, input: &[u8], reason: Reason) -> TcRun {
    let before = t.counters().unwrap();
    let run = t.run_tc_once(input).unwrap();
    one_count(t, before, reason);
    run
}

/// A client on `sport` whose SYN (MSS `mss`) Tier 1 answered; returns its SYN and the cookie.
fn handshake(t: &KernelTiers, sport: u16, mss: u16) -> (Tcp4, u32) {
    let mut syn = Tcp4::syn(VIP, PORT);
    syn.sport = sport;
    syn.tcp_options = packet::linux_syn_options(mss);
    let run = xdp(t, &syn.build(), Reason::SynCookieSent);
    assert_eq!(run.action, XdpAction::Tx);
    (syn.clone(), packet::parse(&run.output).seq)
}

/// The client's segment `offset` bytes into its stream, acknowledging `ack`.
fn client_segment(syn: &Tcp4, offset: u32, ack: u32, flags: u8, payload: &[u8]) -> Tcp4 {
    let mut seg = syn.clone();
    seg.flags = flags;
    seg.seq = syn.seq.wrapping_add(1).wrapping_add(offset);
    seg.ack = ack;
    seg.tcp_options.clear();
    seg.window = 502;
    seg.payload = payload.to_vec();
    seg
}

/// The listener's segment to the client: seq `seq`, ack `ack`.
fn listener_segment(syn: &Tcp4, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Tcp4 {
    let mut seg = Tcp4::syn(CLIENT, syn.sport);
    seg.src = VIP;
    seg.sport = PORT;
    seg.src_mac = SERVER_MAC;
    seg.dst_mac = CLIENT_MAC;
    seg.seq = seq;
    seg.ack = ack;
    seg.flags = flags;
    seg.window = 65535;
    seg.tcp_options = if flags & SYN != 0 {
        vec![2, 4, 0x05, 0xb4]
    } else {
        Vec::new()
    };
    seg.payload = payload.to_vec();
    seg
}

/// Sends the first data segment and checks it became the client's SYN with `mss`.
fn first_segment(t: &KernelTiers, syn: &Tcp4, cookie: u32, payload: &[u8], mss: u16) {
    let data = client_segment(syn, 0, cookie.wrapping_add(1), PSH | ACK, payload);
    let run = xdp(t, &data.build(), Reason::HandoffSynReplayed);
    assert_replayed_syn(syn, &run, mss);
}

fn assert_replayed_syn(syn: &Tcp4, run: &PacketRun, mss: u16) {
    assert_eq!(
        run.action,
        XdpAction::Pass,
        "the SYN goes to the local stack"
    );
    assert_eq!(run.output.len(), 74);
    let p = packet::parse(&run.output);
    assert_eq!((p.eth_dst, p.eth_src), (SERVER_MAC, CLIENT_MAC));
    assert_eq!(
        (p.src, p.dst),
        (CLIENT, VIP),
        "from the client's own address"
    );
    assert_eq!((p.sport, p.dport), (syn.sport, PORT));
    assert_eq!(p.seq, syn.seq, "the client's ISN");
    assert_eq!(p.ack, 0);
    assert_eq!(p.flags, SYN);
    assert_eq!(p.window, 502, "the client's window");
    let m = mss.to_be_bytes();
    let mut mss_only = vec![1u8; 20];
    mss_only[..4].copy_from_slice(&[2, 4, m[0], m[1]]);
    assert_eq!(
        p.tcp_options, mss_only,
        "MSS only (the client sends no timestamps), NOP padded"
    );
    assert_eq!(p.payload_len, 0);
    assert!(p.ip_csum_ok && p.tcp_csum_ok, "complete checksums");
}

/// Runs the listener's SYN-ACK (ISN `listener_isn`) through TC and checks the hand-off ACK.
fn handoff(t: &KernelTiers, syn: &Tcp4, listener_isn: u32, payload: &[u8], reason: Reason) {
    let synack = listener_segment(syn, listener_isn, syn.seq.wrapping_add(1), SYN | ACK, &[]);
    let run = tc(t, &synack.build(), reason);
    assert_eq!(run.action, TC_ACT_REDIRECT, "back into the stack");
    let p = packet::parse(&run.output);
    assert_eq!(run.output.len(), 66 + payload.len());
    assert_eq!(
        (p.eth_dst, p.eth_src),
        (SERVER_MAC, CLIENT_MAC),
        "addressed to us"
    );
    assert_eq!((p.src, p.dst), (CLIENT, VIP));
    assert_eq!((p.sport, p.dport), (syn.sport, PORT));
    assert_eq!(p.seq, syn.seq.wrapping_add(1));
    assert_eq!(
        p.ack,
        listener_isn.wrapping_add(1),
        "acknowledges the listener's SYN"
    );
    assert_eq!(p.flags, PSH | ACK);
    assert_eq!(p.window, 502);
    assert_eq!(p.doff, 8);
    assert_eq!(
        p.tcp_options,
        vec![1; 12],
        "no timestamps (the client sends none): 12 NOPs"
    );
    assert_eq!(&run.output[66..], payload, "the stored segment");
    assert!(p.ip_csum_ok, "IPv4 checksum");
    assert!(p.tcp_csum_ok, "TCP checksum over the payload");
}

#[test]
fn first_data_segment_becomes_the_clients_syn() {
    needs_root!("first_data_segment_becomes_the_clients_syn");
    let t = tiers();
    let (syn, cookie) = handshake(&t, 41000, 1460);
    first_segment(&t, &syn, cookie, REQUEST, 1460);
    let flow = t.flow(&key(41000)).unwrap().expect("a flow entry");
    assert_eq!(flow.state, FLOW_REPLAYED);
    assert_eq!(flow.client_isn, syn.seq);
    assert_eq!(flow.cookie, cookie);
    assert_eq!(flow.mss, 1460);
    assert_eq!(
        t.table_sizes().unwrap(),
        TableSizes {
            flows: 1,
            pending: 1,
            held: 0
        }
    );

    // MSS 1400 is encoded as 1300: the program decodes the cookie's MSS by regenerating it, so the
    // listener's cookie (same inputs) equals ours.
    let (syn, cookie) = handshake(&t, 41001, 1400);
    first_segment(&t, &syn, cookie, REQUEST, 1300);
    let (syn, cookie) = handshake(&t, 41002, 500);
    first_segment(&t, &syn, cookie, b"x", 536);
}

#[test]
fn listener_synack_becomes_the_ack_carrying_the_request() {
    needs_root!("listener_synack_becomes_the_ack_carrying_the_request");
    let t = tiers();
    // Payloads: a request, a full 1460-byte segment, an odd length (checksum padding over three
    // bpf_csum_diff chunks), and the two sides of the stored segment's size classes (512 bytes still
    // go to the short map, 513 to the 2 KB one).
    let big: Vec<u8> = (0..1460u32).map(|i| (i * 7 + 3) as u8).collect();
    let payloads = [REQUEST, &big[..], &big[..1459], &big[..512], &big[..513]];
    for (i, payload) in payloads.into_iter().enumerate() {
        let sport = 42000 + i as u16;
        let (syn, cookie) = handshake(&t, sport, 1460);
        first_segment(&t, &syn, cookie, payload, 1460);
        // tcp_syncookies=2: the listener answers with the same cookie.
        handoff(&t, &syn, cookie, payload, Reason::TcHandoffAck);
        let flow = t.flow(&key(sport)).unwrap().expect("the flow stays");
        assert_eq!((flow.state, flow.offset), (FLOW_ACK_SENT, 0));
    }
    assert_eq!(
        t.table_sizes().unwrap(),
        TableSizes {
            flows: 5,
            pending: 0,
            held: 0
        },
        "stored segments freed"
    );
}

/// A client that retransmits its first segment before the listener answered may send more (or less) in
/// it; what was stored first, in the other size class, must never be what TC sends.
#[test]
fn a_retransmitted_first_segment_replaces_the_stored_one_across_size_classes() {
    needs_root!("a_retransmitted_first_segment_replaces_the_stored_one_across_size_classes");
    let t = tiers();
    let long: Vec<u8> = (0..900u32).map(|i| (i * 13 + 1) as u8).collect();
    // Short first, then long; and long first, then short.
    for (sport, first, again) in [
        (43000, &long[..300], &long[..]),
        (43001, &long[..], &long[..300]),
    ] {
        let (syn, cookie) = handshake(&t, sport, 1460);
        first_segment(&t, &syn, cookie, first, 1460);
        let retransmitted = client_segment(&syn, 0, cookie.wrapping_add(1), PSH | ACK, again);
        let run = xdp(
            &t,
            &retransmitted.build(),
            Reason::HandoffRetransmitReplayed,
        );
        assert_replayed_syn(&syn, &run, 1460);
        assert_eq!(t.table_sizes().unwrap().pending, 1, "one stored segment");
        handoff(&t, &syn, cookie, again, Reason::TcHandoffAck);
    }
    assert_eq!(t.table_sizes().unwrap().pending, 0, "stored segments freed");
}

#[test]
fn a_different_listener_isn_is_translated_both_ways() {
    needs_root!("a_different_listener_isn_is_translated_both_ways");
    let t = tiers();
    let (syn, cookie) = handshake(&t, 43000, 1460);
    first_segment(&t, &syn, cookie, REQUEST, 1460);
    // The minute counter ticked between the two cookies: the listener's ISN differs.
    let listener_isn = cookie.wrapping_add(0x8000_0123);
    handoff(&t, &syn, listener_isn, REQUEST, Reason::TcHandoffAckOffset);
    assert_eq!(t.flow(&key(43000)).unwrap().unwrap().offset, 0x8000_0123);

    // The response: seq moves into the sequence space the client knows.
    let client_end = syn.seq.wrapping_add(1 + REQUEST.len() as u32);
    let response = listener_segment(
        &syn,
        listener_isn.wrapping_add(1),
        client_end,
        PSH | ACK,
        b"HTTP/1.1 200 OK\r\n\r\n",
    );
    let run = tc(&t, &response.build(), Reason::TcTranslated);
    assert_eq!(run.action, TC_ACT_OK);
    let p = packet::parse(&run.output);
    assert_eq!(p.seq, cookie.wrapping_add(1));
    assert_eq!(p.ack, client_end, "the client's own numbers are untouched");
    assert!(p.tcp_csum_ok, "checksum updated with the seq");
    assert_eq!(t.flow(&key(43000)).unwrap().unwrap().state, FLOW_SPLICED);

    // The client's ACK of it: ack moves into the listener's space.
    let ack = client_segment(
        &syn,
        REQUEST.len() as u32,
        cookie.wrapping_add(20),
        ACK,
        &[],
    );
    let run = xdp(&t, &ack.build(), Reason::FlowTranslatedPass);
    assert_eq!(run.action, XdpAction::Pass);
    let p = packet::parse(&run.output);
    assert_eq!(p.ack, listener_isn.wrapping_add(20));
    assert_eq!(p.seq, ack.seq);
    assert!(p.tcp_csum_ok, "checksum updated with the ack");
}

#[test]
fn segments_before_the_listener_socket_exists_are_held_back() {
    needs_root!("segments_before_the_listener_socket_exists_are_held_back");
    let t = tiers();
    let (syn, cookie) = handshake(&t, 44000, 1460);
    first_segment(&t, &syn, cookie, REQUEST, 1460);
    let end = REQUEST.len() as u32;
    // The listener has no socket yet and would reset the connection: a duplicate ACK, a bare FIN and a
    // segment past a gap are dropped (the client retransmits them).
    for (offset, flags, payload) in [
        (0, ACK, &b""[..]),
        (end, FIN | ACK, &b""[..]),
        (end + 100, PSH | ACK, &b"after a gap"[..]),
    ] {
        let seg = client_segment(&syn, offset, cookie.wrapping_add(1), flags, payload);
        let run = xdp(&t, &seg.build(), Reason::HandoffPendingDrop);
        assert_eq!(run.action, XdpAction::Drop);
    }
    // The next segment in sequence is held.
    let next = client_segment(&syn, end, cookie.wrapping_add(1), PSH | ACK, b"more");
    assert_eq!(
        xdp(&t, &next.build(), Reason::HandoffSegmentHeld).action,
        XdpAction::Drop
    );
    assert_eq!(
        t.table_sizes().unwrap(),
        TableSizes {
            flows: 1,
            pending: 1,
            held: 1
        }
    );
    // Its retransmission is not held twice.
    assert_eq!(
        xdp(&t, &next.build(), Reason::HandoffPendingDrop).action,
        XdpAction::Drop
    );
    // A retransmission of the first segment replays the SYN again (and starts holding afresh).
    let again = client_segment(&syn, 0, cookie.wrapping_add(1), PSH | ACK, REQUEST);
    let run = xdp(&t, &again.build(), Reason::HandoffRetransmitReplayed);
    assert_replayed_syn(&syn, &run, 1460);
    let flow = t.flow(&key(44000)).unwrap().unwrap();
    assert_eq!((flow.state, flow.held), (FLOW_REPLAYED, 0));
    // After the hand-off ACK (socket not confirmed: no stack in a test run), still held back.
    handoff(&t, &syn, cookie, REQUEST, Reason::TcHandoffAck);
    let gap = client_segment(&syn, end + 4, cookie.wrapping_add(1), PSH | ACK, b"x");
    assert_eq!(
        xdp(&t, &gap.build(), Reason::HandoffPendingDrop).action,
        XdpAction::Drop
    );
    // A client RST forgets the flow and everything held for it.
    assert_eq!(
        xdp(&t, &next.build(), Reason::HandoffSegmentHeld).action,
        XdpAction::Drop
    );
    let rst = client_segment(&syn, end, 0, RST, &[]);
    assert_eq!(
        xdp(&t, &rst.build(), Reason::HandoffPendingDrop).action,
        XdpAction::Drop
    );
    assert_eq!(t.table_sizes().unwrap(), TableSizes::default());
    assert_eq!(
        t.decision_count().unwrap(),
        0,
        "routing decisions go with the flow"
    );
}

#[test]
fn held_segments_are_injected_behind_the_listeners_first_ack() {
    needs_root!("held_segments_are_injected_behind_the_listeners_first_ack");
    // bpf_clone_redirect really sends the clones to the ingress of the test run's device (the loopback
    // of the current namespace): give this thread a namespace of its own so they go nowhere.
    // SAFETY: unshare affects only the calling thread's namespaces.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
    // A device that is down refuses redirected packets; `ip` forked from this thread runs in its namespace.
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());
    let t = tiers();
    let (syn, cookie) = handshake(&t, 44500, 1460);
    first_segment(&t, &syn, cookie, REQUEST, 1460);
    let big: Vec<u8> = (0..1460u32).map(|i| (i * 13 + 1) as u8).collect();
    let end = REQUEST.len() as u32;
    // Two segments before the listener's SYN-ACK, one after the hand-off ACK.
    let segments = [
        (end, &b"second"[..]),
        (end + 6, &big[..]),
        (end + 6 + 1460, &b"last one"[..]),
    ];
    for (i, (offset, payload)) in segments.iter().enumerate() {
        if i == 2 {
            handoff(&t, &syn, cookie, REQUEST, Reason::TcHandoffAck);
        }
        let seg = client_segment(&syn, *offset, cookie.wrapping_add(1), PSH | ACK, payload);
        assert_eq!(
            xdp(&t, &seg.build(), Reason::HandoffSegmentHeld).action,
            XdpAction::Drop
        );
    }
    assert_eq!(
        t.table_sizes().unwrap(),
        TableSizes {
            flows: 1,
            pending: 0,
            held: 3
        }
    );
    let flow = t.flow(&key(44500)).unwrap().unwrap();
    assert_eq!(flow.held, 3);
    assert_eq!(flow.next_seq, syn.seq.wrapping_add(1 + end + 6 + 1460 + 8));

    // The listener's ACK of the first segment: its socket exists. It becomes the held segments; the
    // last one is the packet itself (the others went to ingress as clones).
    let listener_ack = listener_segment(
        &syn,
        cookie.wrapping_add(1),
        syn.seq.wrapping_add(1 + end),
        ACK,
        &[],
    );
    let run = tc(&t, &listener_ack.build(), Reason::TcHeldInjected);
    assert_eq!(run.action, TC_ACT_REDIRECT);
    let p = packet::parse(&run.output);
    assert_eq!((p.src, p.dst), (CLIENT, VIP));
    assert_eq!((p.eth_dst, p.eth_src), (SERVER_MAC, CLIENT_MAC));
    assert_eq!(p.seq, syn.seq.wrapping_add(1 + end + 6 + 1460));
    assert_eq!(
        p.ack,
        cookie.wrapping_add(1),
        "acknowledges what the listener sent"
    );
    assert_eq!(p.flags, PSH | ACK);
    assert_eq!(&run.output[66..], b"last one");
    assert!(p.ip_csum_ok && p.tcp_csum_ok);
    let flow = t.flow(&key(44500)).unwrap().unwrap();
    assert_eq!((flow.state, flow.held), (FLOW_SPLICED, 0));
    assert_eq!(
        t.table_sizes().unwrap(),
        TableSizes {
            flows: 1,
            pending: 0,
            held: 0
        }
    );
    // The listener's next ACK goes to the client as usual.
    let next_ack = listener_segment(&syn, cookie.wrapping_add(1), flow.next_seq, ACK, &[]);
    let input = next_ack.build();
    let run = tc(&t, &input, Reason::TcPass);
    assert!(run.output == input);
}

#[test]
fn rst_to_a_replayed_syn_reaches_the_client_in_its_sequence_space() {
    needs_root!("rst_to_a_replayed_syn_reaches_the_client_in_its_sequence_space");
    let t = tiers();
    let (syn, cookie) = handshake(&t, 45000, 1460);
    first_segment(&t, &syn, cookie, REQUEST, 1460);
    // Nothing listens on the VIP: the stack answers the SYN with RST|ACK, seq 0.
    let rst = listener_segment(&syn, 0, syn.seq.wrapping_add(1), RST | ACK, &[]);
    let run = tc(&t, &rst.build(), Reason::TcHandoffRst);
    assert_eq!(run.action, TC_ACT_OK);
    let p = packet::parse(&run.output);
    assert_eq!(
        p.seq,
        cookie.wrapping_add(1),
        "the next seq the client expects from us"
    );
    assert_eq!(p.flags, RST | ACK);
    assert!(p.tcp_csum_ok);
    assert_eq!(
        t.table_sizes().unwrap(),
        TableSizes::default(),
        "flow and stored segment deleted"
    );
}

#[test]
fn a_closed_flow_is_deleted() {
    needs_root!("a_closed_flow_is_deleted");
    let t = tiers();
    let (syn, cookie) = handshake(&t, 46000, 1460);
    first_segment(&t, &syn, cookie, REQUEST, 1460);
    handoff(&t, &syn, cookie, REQUEST, Reason::TcHandoffAck);
    let end = REQUEST.len() as u32;
    let client_next = syn.seq.wrapping_add(1 + end);
    // Listener: response with FIN (its socket exists: the flow becomes spliced).
    let fin = listener_segment(
        &syn,
        cookie.wrapping_add(1),
        client_next,
        FIN | PSH | ACK,
        b"ok",
    );
    assert_eq!(tc(&t, &fin.build(), Reason::TcPass).action, TC_ACT_OK);
    // Client: FIN, then the listener's last ACK ends the flow.
    let cfin = client_segment(&syn, end, cookie.wrapping_add(4), FIN | ACK, &[]);
    assert_eq!(
        xdp(&t, &cfin.build(), Reason::FlowPass).action,
        XdpAction::Pass
    );
    assert!(t.flow(&key(46000)).unwrap().is_some());
    assert_eq!(
        t.decision_count().unwrap(),
        1,
        "the first segment's routing decision"
    );
    let last = listener_segment(
        &syn,
        cookie.wrapping_add(4),
        client_next.wrapping_add(1),
        ACK,
        &[],
    );
    assert_eq!(tc(&t, &last.build(), Reason::TcPass).action, TC_ACT_OK);
    assert_eq!(t.table_sizes().unwrap(), TableSizes::default());
    assert_eq!(
        t.decision_count().unwrap(),
        0,
        "routing decisions go with the flow"
    );

    // A RST from the client ends a spliced flow at once.
    let (syn, cookie) = handshake(&t, 46001, 1460);
    first_segment(&t, &syn, cookie, REQUEST, 1460);
    handoff(&t, &syn, cookie, REQUEST, Reason::TcHandoffAck);
    let data = listener_segment(
        &syn,
        cookie.wrapping_add(1),
        syn.seq.wrapping_add(1 + end),
        ACK,
        b"x",
    );
    tc(&t, &data.build(), Reason::TcPass);
    let rst = client_segment(&syn, end, 0, RST, &[]);
    assert_eq!(
        xdp(&t, &rst.build(), Reason::FlowPass).action,
        XdpAction::Pass
    );
    assert_eq!(t.table_sizes().unwrap(), TableSizes::default());
    assert_eq!(
        t.decision_count().unwrap(),
        0,
        "routing decisions go with the flow"
    );
}

#[test]
fn oversize_first_segment_is_dropped() {
    needs_root!("oversize_first_segment_is_dropped");
    let t = tiers();
    let (syn, cookie) = handshake(&t, 47000, 1460);
    let payload = vec![b'a'; PENDING_PAYLOAD_MAX as usize + 1];
    let seg = client_segment(&syn, 0, cookie.wrapping_add(1), PSH | ACK, &payload);
    assert_eq!(
        xdp(&t, &seg.build(), Reason::HandoffOversizeDrop).action,
        XdpAction::Drop
    );
    assert_eq!(t.table_sizes().unwrap(), TableSizes::default());
    assert_eq!(
        t.decision_count().unwrap(),
        0,
        "routing decisions go with the flow"
    );
}

#[test]
fn egress_traffic_of_other_connections_is_untouched() {
    needs_root!("egress_traffic_of_other_connections_is_untouched");
    let t = tiers();
    let (syn, _) = handshake(&t, 48000, 1460);
    // A SYN-ACK for a 4-tuple without a flow, and one from another port.
    for seg in [
        listener_segment(&syn, 7, syn.seq.wrapping_add(1), SYN | ACK, &[]),
        {
            let mut s = listener_segment(&syn, 7, 1, ACK, b"x");
            s.sport = 9999;
            s
        },
    ] {
        let input = seg.build();
        let run = tc(&t, &input, Reason::TcPass);
        assert_eq!(run.action, TC_ACT_OK);
        assert!(run.output == input, "{}", packet::diff(&input, &run.output));
    }
}

#[test]
fn first_segment_after_the_handoff_ack_passes() {
    needs_root!("first_segment_after_the_handoff_ack_passes");
    let t = tiers();
    // Offset 0: the hand-off ACK itself (generic-mode XDP sees redirected packets again) and the
    // client's retransmission of its first segment are the same packet: it passes untouched.
    let (syn, cookie) = handshake(&t, 49000, 1460);
    first_segment(&t, &syn, cookie, REQUEST, 1460);
    let synack = listener_segment(&syn, cookie, syn.seq.wrapping_add(1), SYN | ACK, &[]);
    let handoff_ack = tc(&t, &synack.build(), Reason::TcHandoffAck).output;
    let run = xdp(&t, &handoff_ack, Reason::FlowPass);
    assert_eq!(run.action, XdpAction::Pass);
    assert!(
        run.output == handoff_ack,
        "{}",
        packet::diff(&handoff_ack, &run.output)
    );

    // Offset != 0: the hand-off ACK (listener's space) passes untouched; the client's retransmission
    // (its own space) is translated.
    let (syn, cookie) = handshake(&t, 49001, 1460);
    first_segment(&t, &syn, cookie, REQUEST, 1460);
    let listener_isn = cookie.wrapping_add(77);
    let synack = listener_segment(&syn, listener_isn, syn.seq.wrapping_add(1), SYN | ACK, &[]);
    let handoff_ack = tc(&t, &synack.build(), Reason::TcHandoffAckOffset).output;
    let run = xdp(&t, &handoff_ack, Reason::FlowPass);
    assert!(
        run.output == handoff_ack,
        "{}",
        packet::diff(&handoff_ack, &run.output)
    );
    let again = client_segment(&syn, 0, cookie.wrapping_add(1), PSH | ACK, REQUEST);
    let run = xdp(&t, &again.build(), Reason::FlowTranslatedPass);
    let p = packet::parse(&run.output);
    assert_eq!(p.ack, listener_isn.wrapping_add(1));
    assert!(p.tcp_csum_ok);
    // Anything else is still held back until the socket exists.
    let later = client_segment(&syn, 5, cookie.wrapping_add(1), PSH | ACK, b"x");
    assert_eq!(
        xdp(&t, &later.build(), Reason::HandoffPendingDrop).action,
        XdpAction::Drop
    );
}

#[test]
fn injected_segments_seen_again_are_not_translated_twice() {
    needs_root!("injected_segments_seen_again_are_not_translated_twice");
    let t = tiers();
    let (syn, cookie) = handshake(&t, 49500, 1460);
    first_segment(&t, &syn, cookie, REQUEST, 1460);
    let end = REQUEST.len() as u32;
    let second = client_segment(&syn, end, cookie.wrapping_add(1), PSH | ACK, b"second");
    xdp(&t, &second.build(), Reason::HandoffSegmentHeld);
    let listener_isn = cookie.wrapping_add(0x1234);
    handoff(&t, &syn, listener_isn, REQUEST, Reason::TcHandoffAckOffset);
    // One held segment: the listener's ACK itself becomes it (no clone).
    let listener_ack = listener_segment(
        &syn,
        listener_isn.wrapping_add(1),
        syn.seq.wrapping_add(1 + end),
        ACK,
        &[],
    );
    let injected = tc(&t, &listener_ack.build(), Reason::TcHeldInjected).output;
    let p = packet::parse(&injected);
    assert_eq!(
        p.ack,
        listener_isn.wrapping_add(1),
        "already in the listener's space"
    );
    assert_eq!(&injected[66..], b"second");
    // Generic-mode XDP sees it again: it passes as it is.
    let run = xdp(&t, &injected, Reason::FlowPass);
    assert!(
        run.output == injected,
        "{}",
        packet::diff(&injected, &run.output)
    );
    // The client's own retransmission of it is translated.
    let run = xdp(&t, &second.build(), Reason::FlowTranslatedPass);
    assert_eq!(packet::parse(&run.output).ack, listener_isn.wrapping_add(1));
}

#[test]
fn timestamps_and_window_scaling_go_through_the_handoff() {
    needs_root!("timestamps_and_window_scaling_go_through_the_handoff");
    let t = tiers();
    let sport = 47000;
    let vip_wscale = rauta_dataplane::node_window_scale();
    // The client's SYN offers everything (Linux's options, window scale 7).
    let mut syn = Tcp4::syn(VIP, PORT);
    syn.sport = sport;
    let run = xdp(&t, &syn.build(), Reason::SynCookieSent);
    let cookie = packet::parse(&run.output).seq;
    let (buf, w) = options_of(&packet::parse(&run.output));
    let (ours, _) = tcpopt::timestamps(&buf, &w).expect("timestamps agreed");

    // Its first data segment echoes our timestamp: the replayed SYN offers the listener exactly that
    // (the client's window scale, SACK, the client's own timestamp).
    let mut data = client_segment(&syn, 0, cookie.wrapping_add(1), PSH | ACK, REQUEST);
    data.tcp_options = ts_options(1000, ours, None);
    let run = xdp(&t, &data.build(), Reason::HandoffSynReplayed);
    let p = packet::parse(&run.output);
    let (buf, w) = options_of(&packet::parse(&run.output));
    assert_eq!((w.mss, w.sack_perm, w.wscale), (1460, 1, 7));
    assert_eq!(tcpopt::timestamps(&buf, &w), Some((1000, 0)));
    assert_eq!(p.window, tcpopt::rescale_window(502, 7, 0));
    assert!(p.tcp_csum_ok);

    // The listener's SYN-ACK (its clock, a window scale two above ours): the hand-off ACK echoes it.
    let listener_ts = 9_000_000u32;
    let mut synack = listener_segment(&syn, cookie, syn.seq.wrapping_add(1), SYN | ACK, &[]);
    let mut o = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
    o.extend_from_slice(&listener_ts.to_be_bytes());
    o.extend_from_slice(&1000u32.to_be_bytes());
    o.extend_from_slice(&[1, 3, 3, vip_wscale + 2]);
    synack.tcp_options = o;
    let run = tc(&t, &synack.build(), Reason::TcHandoffAck);
    let (buf, w) = options_of(&packet::parse(&run.output));
    assert_eq!(tcpopt::timestamps(&buf, &w), Some((1000, listener_ts)));
    assert!(packet::parse(&run.output).tcp_csum_ok);
    let flow = t.flow(&key(sport)).unwrap().unwrap();
    assert_eq!(flow.ts_delta, listener_ts.wrapping_sub(ours));

    // The listener's response: its timestamp moved into our clock, its window into our scale.
    let mut response = listener_segment(
        &syn,
        cookie.wrapping_add(1),
        syn.seq.wrapping_add(1 + REQUEST.len() as u32),
        PSH | ACK,
        b"HTTP/1.1 200 OK\r\n",
    );
    response.window = 100;
    response.tcp_options = ts_options(listener_ts + 7, 1000, None);
    let run = tc(&t, &response.build(), Reason::TcPass);
    let p = packet::parse(&run.output);
    let (buf, w) = options_of(&packet::parse(&run.output));
    assert_eq!(tcpopt::timestamps(&buf, &w), Some((ours + 7, 1000)));
    assert_eq!(p.window, 400, "rescaled from the listener's scale to ours");
    assert!(p.tcp_csum_ok, "checksum still right");

    // The client's ACK of it: its echo moved into the listener's clock.
    let mut ack = client_segment(
        &syn,
        REQUEST.len() as u32,
        cookie.wrapping_add(1 + 17),
        ACK,
        &[],
    );
    ack.tcp_options = ts_options(1010, ours + 7, None);
    let run = xdp(&t, &ack.build(), Reason::FlowTranslatedPass);
    let (buf, w) = options_of(&packet::parse(&run.output));
    assert_eq!(tcpopt::timestamps(&buf, &w), Some((1010, listener_ts + 7)));
    assert!(packet::parse(&run.output).tcp_csum_ok);
}
